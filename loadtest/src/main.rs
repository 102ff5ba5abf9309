//! `bookedbarber-loadtest`: see `--help`.

use clap::Parser;
use loadtest::Options;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = Options::parse();
    match loadtest::run(options).await {
        Ok(outcome) => {
            println!("report: {}", outcome.report.display());
            println!(
                "KPIs: {}; bookings check: {}",
                if outcome.kpis_passed { "PASS" } else { "FAIL" },
                if outcome.check_passed { "PASS" } else { "FAIL" }
            );
            // A failed check means lost or doubled bookings: that is a bug,
            // not a capacity figure.
            if outcome.check_passed {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            }
        }
        Err(error) => {
            eprintln!("bookedbarber-loadtest: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
