//! `otago-server`: parse the configuration, open the store, serve until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use otago_server::config::{Cli, Command, MigrateArgs, ServeArgs, default_public_url};
use otago_server::{AppState, ServerConfig, check_store, run_demo, serve};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Check(args)) => {
            check(
                &args.data_dir,
                args.database_url.as_ref(),
                args.storage_url.as_ref(),
            )
            .await
        }
        Some(Command::Migrate(args)) => migrate(&args).await,
        None => run(cli.serve).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("otago-server: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    init_logging(&args.log);
    match otago_server::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open-file limit"),
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.listen))?;
    let local = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(local));
    let mut config =
        ServerConfig::new(&args.data_dir, &public_url)?.with_admin_token(args.admin_token.clone());
    config.database_url = args.database_url.clone();
    config.storage_url = args.storage_url.clone();
    if let Some(base) = &args.asset_base_url {
        config = config.with_asset_base_url(base)?;
    }
    config.asset_memory_bytes = args.asset_memory_mb * 1024 * 1024;
    config.patch_bases = usize::from(args.patch_bases);
    config.adoption_retention_days = args.adoption_retention_days;
    config.max_connections = args
        .max_connections
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    config.header_read_timeout = Duration::from_secs(args.header_read_timeout_secs);
    config.body_timeout = Duration::from_secs(args.body_timeout_secs);
    config.write_timeout = Duration::from_secs(args.write_timeout_secs);
    let opened = AppState::open(config).await?;
    if let Some(token) = &opened.generated_admin_token {
        println!(
            "Generated the admin token (shown once; only its SHA-256 is kept):\n\n  export OTAGO_ADMIN_TOKEN={token}\n"
        );
    }
    if args.demo {
        let outcome = run_demo(&opened.state, &args.demo_app_dir).await?;
        let what = if outcome.published {
            "published the example app as"
        } else {
            "the example app is already published as"
        };
        println!(
            "Demo: {what} project {} (example/production, signed with a TEST key).\nIts update URL (an app's `updates.url`): {}",
            outcome.project_ref,
            opened.state.config().update_url(&outcome.project_ref)
        );
        println!(
            "Fetch its manifest as an Expo app would:\n\n{}\n",
            outcome.curl
        );
    }
    tracing::info!(listen = %local, public_url = %public_url, data_dir = %args.data_dir.display(), "otago-server listening");
    println!("otago-server listening on http://{local} (public URL {public_url})");
    serve(listener, opened.state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn migrate(args: &MigrateArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let report = otago_server::migrate(
        &args.data_dir,
        args.from.as_ref(),
        &args.to,
        args.assets_from.as_ref(),
        args.assets_to.as_ref(),
    )
    .await?;
    for table in &report.tables {
        println!(
            "{}: {} rows, {} copied now, every one checked",
            table.table, table.rows, table.written
        );
    }
    if args.assets_to.is_some() {
        println!(
            "assets: {} copied now, {} already there, every one re-hashed in the target",
            report.assets_copied, report.assets_present
        );
    }
    println!("migrated to {:?}", args.to);
    Ok(ExitCode::SUCCESS)
}

async fn check(
    data_dir: &std::path::Path,
    database: Option<&otago_server::config::DatabaseUrl>,
    storage: Option<&otago_server::config::StorageUrl>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let report = check_store(data_dir, database, storage).await?;
    for note in &report.notes {
        println!("note: {note}");
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!(
        "checked {} assets: {} problem(s)",
        report.assets_checked,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
