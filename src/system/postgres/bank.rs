//! The bank workload across independent PostgreSQL instances: account `a`
//! lives on instance `a mod n`, in a table `faultline_bank` of each
//! instance, and a transfer between two instances is one global transaction
//! of PostgreSQL's two-phase commit, faultline's client its transaction
//! manager ([`super::tm`]).
//!
//! - Setup, once per run before the first operation: the table and the
//!   accounts of each instance with their initial balance, idempotently.
//! - A transfer within one instance is one local transaction. Across two, in
//!   the instances' order (so transfers and reads take locks in one global
//!   order and never deadlock one another): `BEGIN`, the debit (its balance
//!   locked `FOR UPDATE` and checked) or the credit, `PREPARE TRANSACTION`
//!   on both, the decision logged durably, `COMMIT PREPARED` on both. A
//!   failure before the decision rolls back what was prepared and is `fail`
//!   (recovery rolls back what it could not: presumed abort); after the
//!   decision it is `info` (recovery finishes the commit).
//! - A read first resolves the in-doubt transactions of every instance
//!   ([`Tm::recover`]), then reads every instance's accounts `FOR SHARE` in
//!   open transactions, holding the locks until all are read: a consistent
//!   cut across instances. `lock_timeout` turns a lock held by an in-doubt
//!   transaction into `fail`, not a hang.
//! - A background task per run resolves in-doubt transactions every second.
//!
//! The injectable bug `commit-before-prepared`: each side of a transfer is
//! committed on its own (one-phase), the first before the second has even
//! started.

use super::tm::{self, Decision, DecisionLog, IN_DOUBT_AGE, Tm, within};
use crate::history::Ended;
use crate::nodes::wire::{Key, Operation, Output, history_value};
use crate::system::{self, BoxFuture, Endpoint};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Every transaction here: row locks do the isolating, whatever the
/// server's default level.
const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The table of accounts on every instance.
const TABLE: &str = "faultline_bank";

/// How long a statement waits for a row lock before it fails: a lock held
/// by an in-doubt transaction ends the operation (as `fail`) within the
/// run's operation timeout (1 s), and the server's session with it.
const LOCK_TIMEOUT_MS: u64 = 500;

/// The bugs of the transaction manager, by name: (name, what it breaks).
pub const BUGS: &[(&str, &str)] = &[
    (
        "commit-before-prepared",
        "bank: a cross-instance transfer commits each side on its own, the first \
         before the second has prepared; a failure in between loses or makes money",
    ),
    (
        "forget-in-doubt",
        "bank: recovery rolls back every in-doubt prepared transaction, even one \
         whose commit was logged and whose other side committed",
    ),
];

/// The decision log's name in a run's folder.
pub const DECISION_LOG: &str = "2pc-decisions.log";

/// What the bank's clients of one run are given.
pub struct Settings {
    pub endpoints: Vec<Endpoint>,
    pub connect_timeout: Duration,
    pub accounts: u32,
    pub initial_balance: i64,
    /// Where the transaction manager logs its decisions.
    pub decision_log: PathBuf,
    pub bugs: Vec<String>,
}

impl Settings {
    /// For `bank` deployed with `options`: the decision log in the run's
    /// folder, or (outside a run: `bench system`) in the temp dir, named
    /// after this process.
    pub fn new(
        endpoints: Vec<Endpoint>,
        connect_timeout: Duration,
        bank: &crate::workload::bank::Bank,
        options: &crate::system::DeployOptions,
    ) -> Settings {
        let decision_log = match &options.run_dir {
            Some(dir) => dir.join(DECISION_LOG),
            None => std::env::temp_dir()
                .join(format!("faultline-{}-{DECISION_LOG}", std::process::id())),
        };
        Settings {
            endpoints,
            connect_timeout,
            accounts: bank.accounts,
            initial_balance: bank.initial_balance,
            decision_log,
            bugs: options.bugs.clone(),
        }
    }
}

/// What every client of a run shares.
struct Shared {
    endpoints: Vec<Endpoint>,
    connect_timeout: Duration,
    accounts: u32,
    initial_balance: i64,
    commit_before_prepared: bool,
    tm: Result<Tm, String>,
    /// Done once, by the first operation.
    setup: tokio::sync::OnceCell<()>,
    recovery: Mutex<Option<JoinHandle<()>>>,
}

/// The bank's clients of one run.
pub struct Clients {
    shared: Arc<Shared>,
}

impl Clients {
    pub fn new(settings: Settings) -> Clients {
        let has = |b: &str| settings.bugs.iter().any(|x| x == b);
        // Tells this run's gids from any other's on the same instances.
        let tag = format!(
            "{}x{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros())
        );
        let tm = DecisionLog::open(&settings.decision_log)
            .map(|log| Tm::new(log, &tag, has("forget-in-doubt")))
            .map_err(|e| {
                format!(
                    "cannot open the decision log {}: {e}",
                    settings.decision_log.display()
                )
            });
        Clients {
            shared: Arc::new(Shared {
                endpoints: settings.endpoints,
                connect_timeout: settings.connect_timeout,
                accounts: settings.accounts,
                initial_balance: settings.initial_balance,
                commit_before_prepared: has("commit-before-prepared"),
                tm,
                setup: tokio::sync::OnceCell::new(),
                recovery: Mutex::new(None),
            }),
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.shared.recovery).take() {
            task.abort();
        }
    }
}

impl system::Clients for Clients {
    fn nodes(&self) -> usize {
        self.shared.endpoints.len()
    }

    fn open(&self, home: usize) -> Box<dyn system::Client> {
        Box::new(BankClient {
            home: home % self.shared.endpoints.len().max(1),
            conns: (0..self.shared.endpoints.len()).map(|_| None).collect(),
            shared: self.shared.clone(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One session per instance, made when needed.
type Conns = Vec<Option<tokio_postgres::Client>>;

/// One worker's client: a session with each instance.
struct BankClient {
    shared: Arc<Shared>,
    home: usize,
    conns: Conns,
}

impl system::Client for BankClient {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let node = self.shared.endpoints[self.home].name.clone();
            if let Err(e) = self.shared.clone().prepare(deadline).await {
                return (node, Ended::Fail(e));
            }
            let ended = match op {
                Operation::Transfer { from, to, amount } => {
                    self.transfer(*from, *to, *amount, deadline).await
                }
                Operation::BankRead => self.read(deadline).await,
                op => Ended::Fail(format!(
                    "the bank client does not run {} operations",
                    op.f()
                )),
            };
            (node, ended)
        })
    }

    fn reset(&mut self) {
        self.conns.iter_mut().for_each(|c| *c = None);
    }
}

impl Shared {
    /// Before the first operation: the accounts on every instance, and the
    /// background recovery.
    async fn prepare(self: Arc<Self>, deadline: Instant) -> Result<(), String> {
        self.tm.as_ref().map_err(Clone::clone)?;
        self.setup.get_or_try_init(|| self.set_up(deadline)).await?;
        let mut recovery = lock(&self.recovery);
        if recovery.is_none() {
            *recovery = Some(tokio::spawn(recover_forever(self.clone())));
        }
        Ok(())
    }

    fn tm(&self) -> &Tm {
        match &self.tm {
            Ok(tm) => tm,
            Err(_) => unreachable!("checked by prepare"),
        }
    }

    /// The instance that holds `account`.
    fn instance(&self, account: Key) -> usize {
        account.rem_euclid(self.endpoints.len() as i64) as usize
    }

    /// The table and the accounts of each instance, with their initial
    /// balance; an account that exists is left as it is.
    async fn set_up(&self, deadline: Instant) -> Result<(), String> {
        for (i, e) in self.endpoints.iter().enumerate() {
            let conn = self
                .connect(i, deadline)
                .await
                .map_err(|err| format!("setting up {}: {err}", e.name))?;
            let ids: Vec<i64> = (0..i64::from(self.accounts))
                .filter(|&a| self.instance(a) == i)
                .collect();
            let create = format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, balance bigint NOT NULL)"
            );
            within(deadline, conn.batch_execute(&create))
                .await
                .map_err(|err| format!("setting up {}: {err}", e.name))?;
            within(
                deadline,
                conn.execute(
                    &format!(
                        "INSERT INTO {TABLE} SELECT a, $2 FROM unnest($1::bigint[]) a \
                         ON CONFLICT (id) DO NOTHING"
                    ),
                    &[&ids, &self.initial_balance],
                ),
            )
            .await
            .map_err(|err| format!("setting up {}: {err}", e.name))?;
        }
        Ok(())
    }

    /// A new session with instance `i`.
    async fn connect(&self, i: usize, deadline: Instant) -> Result<tokio_postgres::Client, String> {
        let addr = &self.endpoints[i].addr;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("{addr} is no HOST:PORT"))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(self.connect_timeout)
            // A session whose client vanished mid-transaction (a timeout
            // here, a partition) lets its locks go.
            .options(format!(
                "-c lock_timeout={LOCK_TIMEOUT_MS} -c idle_in_transaction_session_timeout=10000"
            ));
        let until = deadline.min(Instant::now() + self.connect_timeout);
        let (client, connection) =
            tokio::time::timeout_at(until, config.connect(tokio_postgres::NoTls))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("connect: {}", tm::describe(&e)))?;
        // Ends when the client is dropped or the server closes the session.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// Every second, on every instance, the in-doubt transactions resolved.
async fn recover_forever(shared: Arc<Shared>) {
    let mut conns: Conns = (0..shared.endpoints.len()).map(|_| None).collect();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        for i in 0..shared.endpoints.len() {
            if let Err(e) = recover_on(&shared, &mut conns, i, deadline).await {
                tracing::debug!("recovery on {}: {e}", shared.endpoints[i].name);
            }
        }
    }
}

/// One recovery pass on instance `i`, through `conns[i]`.
async fn recover_on(
    shared: &Shared,
    conns: &mut Conns,
    i: usize,
    deadline: Instant,
) -> Result<(), String> {
    let conn = session(shared, conns, i, deadline).await?;
    match shared.tm().recover(conn, IN_DOUBT_AGE, deadline).await {
        Ok((committed, rolled_back)) => {
            if committed + rolled_back > 0 {
                tracing::info!(
                    "recovery on {}: {committed} in-doubt transactions committed, {rolled_back} rolled back",
                    shared.endpoints[i].name
                );
            }
            Ok(())
        }
        Err(e) => {
            conns[i] = None;
            Err(e)
        }
    }
}

/// The session with instance `i`, made if there is none.
async fn session<'c>(
    shared: &Shared,
    conns: &'c mut Conns,
    i: usize,
    deadline: Instant,
) -> Result<&'c tokio_postgres::Client, String> {
    if conns[i].as_ref().is_none_or(|c| c.is_closed()) {
        conns[i] = Some(shared.connect(i, deadline).await?);
    }
    Ok(conns[i].as_ref().expect("connected above"))
}

/// One side of a transfer on its instance.
#[derive(Clone, Copy)]
enum Side {
    /// Take `amount` from `account`, if it holds that much.
    Debit(Key, i64),
    Credit(Key, i64),
}

/// Why one side of a transfer did not happen.
enum SideError {
    /// The account holds less than the amount: nothing was changed.
    Insufficient,
    Other(String),
}

impl BankClient {
    /// Runs `sql` on instance `i`'s session; an error drops the
    /// session (a statement may still run on it).
    async fn exec(&mut self, i: usize, sql: &str, deadline: Instant) -> Result<(), String> {
        let conn = session(&self.shared, &mut self.conns, i, deadline).await?;
        let r = within(deadline, conn.batch_execute(sql)).await;
        if r.is_err() {
            self.conns[i] = None;
        }
        r
    }

    /// `side` in the open transaction on instance `i`.
    async fn apply(&mut self, i: usize, side: Side, deadline: Instant) -> Result<(), SideError> {
        let conn = session(&self.shared, &mut self.conns, i, deadline)
            .await
            .map_err(SideError::Other)?;
        let r = match side {
            Side::Debit(account, amount) => {
                let row = within(
                    deadline,
                    conn.query_opt(
                        &format!("SELECT balance FROM {TABLE} WHERE id = $1 FOR UPDATE"),
                        &[&account],
                    ),
                )
                .await;
                match row {
                    Ok(Some(row)) if row.get::<_, i64>(0) < amount => {
                        return Err(SideError::Insufficient);
                    }
                    Ok(Some(_)) => {
                        within(
                            deadline,
                            conn.execute(
                                &format!("UPDATE {TABLE} SET balance = balance - $2 WHERE id = $1"),
                                &[&account, &amount],
                            ),
                        )
                        .await
                    }
                    Ok(None) => Err(format!("no account {account}")),
                    Err(e) => Err(e),
                }
            }
            Side::Credit(account, amount) => {
                within(
                    deadline,
                    conn.execute(
                        &format!("UPDATE {TABLE} SET balance = balance + $2 WHERE id = $1"),
                        &[&account, &amount],
                    ),
                )
                .await
            }
        };
        match r {
            Ok(1) => Ok(()),
            Ok(n) => Err(SideError::Other(format!("{n} accounts updated, not 1"))),
            Err(e) => {
                self.conns[i] = None;
                Err(SideError::Other(e))
            }
        }
    }

    /// Rolls back the open transaction on instance `i` (or drops its
    /// session, which does the same).
    async fn roll_back(&mut self, i: usize, deadline: Instant) {
        let _ = self.exec(i, "ROLLBACK", deadline).await;
    }

    async fn transfer(&mut self, from: Key, to: Key, amount: i64, deadline: Instant) -> Ended {
        let shared = self.shared.clone();
        if from == to
            || amount < 0
            || [from, to]
                .iter()
                .any(|&a| a < 0 || a >= i64::from(shared.accounts))
        {
            return Ended::Fail(format!("bad transfer {from} -> {to} of {amount}"));
        }
        let (a, b) = (shared.instance(from), shared.instance(to));
        if a == b {
            return self.local_transfer(a, from, to, amount, deadline).await;
        }
        let debit = (a, Side::Debit(from, amount));
        let credit = (b, Side::Credit(to, amount));
        // In the instances' order: every operation locks in one order.
        let sides = if a < b {
            [debit, credit]
        } else {
            [credit, debit]
        };
        let done = Operation::Transfer { from, to, amount }.history_value();
        if shared.commit_before_prepared {
            return self.one_phase_each(sides, done, deadline).await;
        }
        let tm = shared.tm();
        let owned = tm.begin();
        let gid = owned.gid.clone();
        // Phase one: every side done and prepared.
        let mut prepared = Vec::new();
        let mut failed = None;
        for (i, side) in sides {
            if let Err(e) = self.exec(i, BEGIN, deadline).await {
                failed = Some(SideError::Other(e));
                break;
            }
            if let Err(e) = self.apply(i, side, deadline).await {
                self.roll_back(i, deadline).await;
                failed = Some(e);
                break;
            }
            // Sent: it may have prepared even when no answer came, and
            // recovery will roll it back then (no commit is logged).
            let sent = self
                .exec(i, &format!("PREPARE TRANSACTION '{gid}'"), deadline)
                .await;
            prepared.push(i);
            if let Err(e) = sent {
                failed = Some(SideError::Other(format!("prepare: {e}")));
                break;
            }
        }
        let decided = match failed {
            None => tm.decide(&gid, Decision::Commit).await,
            Some(e) => Err(match e {
                SideError::Insufficient => "insufficient-funds".to_string(),
                SideError::Other(e) => e,
            }),
        };
        if let Err(why) = decided {
            // Never committed anywhere: whatever this leaves prepared,
            // recovery rolls back.
            for i in prepared {
                let _ = self
                    .exec(i, &format!("ROLLBACK PREPARED '{gid}'"), deadline)
                    .await;
            }
            return Ended::Fail(why);
        }
        // Phase two: the decision is durable; what does not commit now,
        // recovery commits.
        let mut unfinished = Vec::new();
        for (i, _) in sides {
            if let Err(e) = self
                .exec(i, &format!("COMMIT PREPARED '{gid}'"), deadline)
                .await
            {
                unfinished.push(format!("{}: {e}", shared.endpoints[i].name));
            }
        }
        drop(owned);
        if unfinished.is_empty() {
            Ended::Ok(done)
        } else {
            Ended::Info(format!(
                "commit of {gid} decided, not finished on {} (recovery finishes it)",
                unfinished.join("; ")
            ))
        }
    }

    /// A transfer within instance `i`: one local transaction.
    async fn local_transfer(
        &mut self,
        i: usize,
        from: Key,
        to: Key,
        amount: i64,
        deadline: Instant,
    ) -> Ended {
        if let Err(e) = self.exec(i, BEGIN, deadline).await {
            return Ended::Fail(e);
        }
        // Both rows locked in the accounts' order: no deadlock with another
        // transfer between the same two.
        let (lo, hi) = (from.min(to), from.max(to));
        let locked = {
            let conn = match session(&self.shared, &mut self.conns, i, deadline).await {
                Ok(c) => c,
                Err(e) => return Ended::Fail(e),
            };
            within(
                deadline,
                conn.execute(
                    &format!("SELECT 1 FROM {TABLE} WHERE id IN ($1, $2) ORDER BY id FOR UPDATE"),
                    &[&lo, &hi],
                ),
            )
            .await
        };
        if let Err(e) = locked {
            self.conns[i] = None;
            return Ended::Fail(e);
        }
        for side in [Side::Debit(from, amount), Side::Credit(to, amount)] {
            if let Err(e) = self.apply(i, side, deadline).await {
                self.roll_back(i, deadline).await;
                return Ended::Fail(match e {
                    SideError::Insufficient => "insufficient-funds".to_string(),
                    SideError::Other(e) => e,
                });
            }
        }
        match self.exec(i, "COMMIT", deadline).await {
            Ok(()) => Ended::Ok(Operation::Transfer { from, to, amount }.history_value()),
            Err(e) => Ended::Info(format!("commit: {e}")),
        }
    }

    /// The bug `commit-before-prepared`: each side a local transaction,
    /// committed before the next side begins.
    async fn one_phase_each(
        &mut self,
        sides: [(usize, Side); 2],
        done: serde_json::Value,
        deadline: Instant,
    ) -> Ended {
        for (n, (i, side)) in sides.into_iter().enumerate() {
            if let Err(e) = self.exec(i, BEGIN, deadline).await {
                return Ended::Fail(e);
            }
            if let Err(e) = self.apply(i, side, deadline).await {
                self.roll_back(i, deadline).await;
                return Ended::Fail(match e {
                    SideError::Insufficient => "insufficient-funds".to_string(),
                    SideError::Other(e) => e,
                });
            }
            if let Err(e) = self.exec(i, "COMMIT", deadline).await {
                return if n == 0 {
                    Ended::Info(format!("commit: {e}"))
                } else {
                    Ended::Info(format!("commit of the second side: {e}"))
                };
            }
        }
        Ended::Ok(done)
    }

    /// Every account of every instance, read under share locks held until
    /// all are read; in-doubt transactions resolved first.
    async fn read(&mut self, deadline: Instant) -> Ended {
        let shared = self.shared.clone();
        let n = shared.endpoints.len();
        for i in 0..n {
            if let Err(e) = recover_on(&shared, &mut self.conns, i, deadline).await {
                return Ended::Fail(format!("recovery on {}: {e}", shared.endpoints[i].name));
            }
        }
        let mut balances = BTreeMap::new();
        let mut opened = Vec::new();
        let mut failed = None;
        for i in 0..n {
            if let Err(e) = self.exec(i, BEGIN, deadline).await {
                failed = Some(e);
                break;
            }
            opened.push(i);
            let conn = match session(&shared, &mut self.conns, i, deadline).await {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let rows = within(
                deadline,
                conn.query(
                    &format!("SELECT id, balance FROM {TABLE} ORDER BY id FOR SHARE"),
                    &[],
                ),
            )
            .await;
            match rows {
                Ok(rows) => {
                    for row in rows {
                        balances.insert(row.get::<_, i64>(0), row.get::<_, i64>(1));
                    }
                }
                Err(e) => {
                    self.conns[i] = None;
                    failed = Some(format!("{}: {e}", shared.endpoints[i].name));
                    break;
                }
            }
        }
        // Read-only: a commit or rollback that fails changes nothing.
        let end = if failed.is_none() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        for i in opened {
            let _ = self.exec(i, end, deadline).await;
        }
        match failed {
            Some(e) => Ended::Fail(e),
            None => Ended::Ok(history_value(
                &Operation::BankRead,
                &Output::Balances(balances),
            )),
        }
    }
}
