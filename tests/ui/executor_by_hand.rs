// The executor inside the generated client is private: no request can bypass it.
use oauth_sdk::executor::Executor;

fn main() {
    let _ = Executor::logged_out();
}
