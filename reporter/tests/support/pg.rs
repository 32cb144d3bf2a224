//! A throwaway PostgreSQL 15 server for the tests: `initdb` into a temporary folder, started
//! with `pg_ctl` on a free loopback port (its socket in the same folder), a `dialtone`
//! database, stopped and deleted on drop.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
//! `postgres` user (`runuser -u postgres --`) in a folder owned by it. When the binaries are
//! missing, a root test installs them (`apt-get install -y postgresql-15`); otherwise the test
//! fails saying how to install them — a database test never passes by skipping.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use tempfile::TempDir;

/// Where Debian/Ubuntu put PostgreSQL 15.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running server.
#[derive(Debug)]
pub struct PgServer {
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the server binaries once per test process, as root only.
fn ensure_binaries() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if Path::new(BIN).join("initdb").exists() {
        return;
    }
    assert!(
        is_root(),
        "PostgreSQL 15 is not installed ({BIN}/initdb is missing) and the tests do not run as \
         root, so they cannot install it: run `sudo apt-get install -y postgresql-15`"
    );
    let install = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let _ = install(&["update"]);
    assert!(
        install(&["install", "-y", "postgresql-15"]),
        "apt-get install -y postgresql-15 failed; install PostgreSQL 15 by hand"
    );
    assert!(
        Path::new(BIN).join("initdb").exists(),
        "postgresql-15 installed but {BIN}/initdb is still missing"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// Starts a fresh server with an empty `dialtone` database.
    ///
    /// # Panics
    ///
    /// When PostgreSQL cannot be installed, initialised or started (with its log).
    pub fn start() -> PgServer {
        ensure_binaries();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("dialtone-pg-")
            .tempdir()
            .expect("a temporary folder");
        let mut server = PgServer {
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            server.run_checked("chown", &["-R", "postgres:postgres", &server.path_str()]);
        }
        let data = server.data();
        server.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // A port picked free can be taken by the time the server binds it: try a few.
        let mut started = false;
        for _ in 0..5 {
            server.port = free_port();
            if server.pg_ctl_start().status.success() {
                started = true;
                break;
            }
        }
        assert!(started, "PostgreSQL did not start:\n{}", server.log());
        server.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                "dialtone",
            ],
        );
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/dialtone`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/dialtone", self.port)
    }

    /// Stops the server (fast shutdown: sessions are disconnected, as in an outage).
    pub fn stop(&self) {
        let data = self.data();
        self.pg("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w"]);
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        assert!(
            out.status.success(),
            "PostgreSQL did not restart:\n{}",
            self.log()
        );
    }

    fn pg_ctl_start(&self) -> Output {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60 \
             -c shared_buffers=16MB",
            self.port,
            self.path_str()
        );
        let data = self.data();
        let log = self.dir.path().join("server.log").display().to_string();
        self.command(
            "pg_ctl",
            &["start", "-D", &data, "-l", &log, "-o", &options, "-w"],
        )
    }

    fn path_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs a PostgreSQL binary (as `postgres` when we are root).
    fn command(&self, program: &str, args: &[&str]) -> Output {
        let binary: PathBuf = Path::new(BIN).join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let out = self.command(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn run_checked(&self, program: &str, args: &[&str]) {
        let ok = Command::new(program)
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{program} {args:?} failed");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        // Immediate: nothing to keep; ignore "not running" (a test stopped it).
        let _ = self.command("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
    }
}
