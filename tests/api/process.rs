//! The real `bookedbarber` binary as a child process, for tests that measure
//! the server as a process: its memory, its file limit, its shutdown.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A running `bookedbarber serve` on an embedded database of its own.
pub struct ServerProcess {
    pub addr: SocketAddr,
    /// The server's embedded database, for tests that reach into it.
    pub database_url: String,
    pub child: Child,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the binary with `env` on top of test defaults; `file_limit`
    /// runs it under `ulimit -n`.
    pub async fn start(env: &[(&str, &str)], file_limit: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}?mode=rwc", dir.path().join("server.db").display());
        Self::spawn(dir, database, env, file_limit).await
    }

    /// Starts the binary with `env` on `database_url`, which another server
    /// (a test's) uses too.
    pub async fn start_on(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(tempfile::tempdir().unwrap(), database_url.to_owned(), env, None).await
    }

    async fn spawn(
        dir: tempfile::TempDir,
        database: String,
        env: &[(&str, &str)],
        file_limit: Option<u32>,
    ) -> Self {
        let binary = env!("CARGO_BIN_EXE_bookedbarber");
        let mut command = match file_limit {
            Some(limit) => {
                let mut command = Command::new("sh");
                command.args(["-c", &format!("ulimit -n {limit} && exec \"$0\""), binary]);
                command
            }
            None => Command::new(binary),
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &database)
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("DEMO_SEED", "false")
            .env("JWT_SECRET", crate::helpers::TEST_JWT_SECRET)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the server binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    return rest.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server listens within a minute");
        // Keep reading its output, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { addr, database_url: database, child, client: reqwest::Client::new(), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A line of `/proc/<pid>/status`, in kB (`VmRSS`, `VmHWM`).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Sends SIGTERM and waits for the process to end; how long it took.
    pub async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().unwrap();
        let started = Instant::now();
        let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.unwrap();
        assert!(killed.success());
        self.child.wait().await.unwrap();
        started.elapsed()
    }
}
