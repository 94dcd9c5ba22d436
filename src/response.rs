//! Generated methods read responses here rather than through progenitor's `ResponseValue`
//! constructors, which copy the response's header map; these move it (see `codegen`'s `trim`).
//! Same results, same errors.

use progenitor_client::{ByteStream, Error, ResponseValue};
use reqwest::Response;
use serde::de::DeserializeOwned;

/// A JSON body read into `T`.
pub(crate) async fn from_response<T: DeserializeOwned, E>(
    mut response: Response,
) -> Result<ResponseValue<T>, Error<E>> {
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let body = response.bytes().await.map_err(Error::ResponseBodyError)?;
    let inner = serde_json::from_slice(&body).map_err(|e| Error::InvalidResponsePayload(body, e))?;
    Ok(ResponseValue::new(inner, status, headers))
}

/// A response whose body is not read.
#[allow(dead_code, reason = "used by generated code if the spec has body-less responses")]
pub(crate) fn empty(mut response: Response) -> ResponseValue<()> {
    let headers = std::mem::take(response.headers_mut());
    ResponseValue::new((), response.status(), headers)
}

/// A body handed over as a stream of bytes.
#[allow(dead_code, reason = "used by generated code if the spec has binary responses")]
pub(crate) fn stream(mut response: Response) -> ResponseValue<ByteStream> {
    let (status, headers) = (response.status(), std::mem::take(response.headers_mut()));
    ResponseValue::new(ByteStream::new(Box::pin(response.bytes_stream())), status, headers)
}
