//! `make demo` / `make bench`: a throwaway MariaDB like the tests use
//! (table logging, RDS's rotate procedures, the log_rotator user). Prints
//! `PORT SERVER_PID SOCKET` once ready, then runs until killed; the caller
//! stops the server by its pid.

fn main() {
    let db = suite_tests::mariadb::MariaDb::start();
    println!("{} {} {}", db.port, db.pid(), db.socket().display());
    loop {
        std::thread::park();
    }
}
