//! `fqctl`: the operator CLI of a fengqiao node. See `fengqiao_node::cli`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    fengqiao_node::cli::run().await
}
