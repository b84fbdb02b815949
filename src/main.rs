//! The `dingtalk-bridge` command: everything lives in the library; see `cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    dingtalk_bridge::cli::main()
}
