//! A throwaway MariaDB (Debian's mariadb-server) on 127.0.0.1, logging to
//! tables like RDS with `log_output=TABLE`, with RDS's rotate procedures
//! and a `log_rotator` user installed.

use crate::process::{Guard, free_port, spawn, wait_for_port};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const USER: &str = "log_rotator";
pub const PASSWORD: &str = "rotator-Pa55word";

/// RDS's definitions: each call drops the previous backup table.
const PROCEDURES: &str = "
DELIMITER ;;
CREATE PROCEDURE mysql.rds_rotate_slow_log()
BEGIN
  CREATE TABLE IF NOT EXISTS mysql.slow_log2 LIKE mysql.slow_log;
  DROP TABLE IF EXISTS mysql.slow_log_backup;
  RENAME TABLE mysql.slow_log TO mysql.slow_log_backup, mysql.slow_log2 TO mysql.slow_log;
END;;
CREATE PROCEDURE mysql.rds_rotate_general_log()
BEGIN
  CREATE TABLE IF NOT EXISTS mysql.general_log2 LIKE mysql.general_log;
  DROP TABLE IF EXISTS mysql.general_log_backup;
  RENAME TABLE mysql.general_log TO mysql.general_log_backup, mysql.general_log2 TO mysql.general_log;
END;;
DELIMITER ;
";

pub struct MariaDb {
    pub port: u16,
    pub dir: PathBuf,
    server: Guard,
}

fn program(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{candidates:?} not found: install the Debian package mariadb-server \
                 (scripts/system-deps.sh does)"
            )
        })
}

impl MariaDb {
    /// Starts a server in a new directory under the system temp dir.
    pub fn start() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mariadb-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        // Its own temp dir: the bootstrap's temporary tables once vanished from
        // a shared /tmp under parallel tests ("Unknown table mysql.tmp_user_*").
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let install = Command::new(program(&[
            "/usr/bin/mariadb-install-db",
            "/usr/bin/mysql_install_db",
        ]))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--user=root",
            "--skip-test-db",
        ])
        .output()
        .expect("mariadb-install-db runs");
        assert!(
            install.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = free_port();
        let mut server = Command::new(program(&["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]));
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--log-output=TABLE",
                "--slow-query-log=1",
                "--long-query-time=0",
                "--general-log=1",
                "--innodb-buffer-pool-size=16M",
                "--skip-name-resolve",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let guard = spawn(server);
        assert!(
            wait_for_port(port, Duration::from_secs(60)),
            "mariadbd did not listen on {port}; see {}",
            dir.join("error.log").display()
        );
        let db = Self {
            port,
            dir,
            server: guard,
        };
        db.sql(PROCEDURES);
        db.sql(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';
             GRANT SELECT, EXECUTE ON mysql.* TO '{USER}'@'%';"
        ));
        db
    }

    /// The server's process id, for scripts that must stop it.
    pub fn pid(&self) -> u32 {
        self.server.0.id()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Runs `statements` as root through the mariadb client; returns its
    /// tab-separated output without headers.
    pub fn sql(&self, statements: &str) -> String {
        sql_at(&self.socket(), statements)
    }
}

pub fn sql_at(socket: &Path, statements: &str) -> String {
    let mut child = Command::new(program(&["/usr/bin/mariadb", "/usr/bin/mysql"]))
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "--batch", "--skip-column-names", "--raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mariadb client runs");
    let mut stdin = child.stdin.take().expect("piped");
    let input = statements.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("the mariadb client ends");
    writer
        .join()
        .expect("writer thread")
        .expect("statements written");
    assert!(
        output.status.success(),
        "mariadb: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        statements.chars().take(500).collect::<String>()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // Stop the server before removing its files; each leaves ~130 MB.
        let _ = self.server.0.kill();
        let _ = self.server.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
