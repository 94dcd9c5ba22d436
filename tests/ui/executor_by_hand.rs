// progenitor's client, which has every operation, is private to the generated module, and the
// runtime's executor it sends through cannot be built outside the runtime: no request bypasses the
// typestate or the session.
use oauth_sdk::api::progenitor::Client as Raw;

fn main() {
    let _ = oauth_sdk::__private::Executor::logged_out(|_| oauth_sdk::__private::Access::Public, None);
    let _: Option<Raw> = None;
}
