//! A custom system's client: the user's program, run on the controller once
//! per worker, one operation at a time over newline-delimited JSON.
//!
//! faultline writes `{"id":1,"f":"read","value":[3,null],"node":"10.0.0.1:7000"}`
//! and reads `{"id":1,"type":"ok"|"fail"|"info","value":...,"error":...}`.
//! An `ok` reply's `value` is the completion's value. No reply within the
//! operation's timeout, a program that exited, or a line that is not such a
//! reply (bad JSON, another id, no `value` with `ok`) makes the operation
//! `info`: the program is killed (its whole process group), the reason
//! logged, and a fresh one started for the next operation after a backoff
//! that doubles up to [`BACKOFF_MAX`] while failures continue; operations
//! during the backoff `fail` at once (nothing was sent). A fresh program's
//! first operation gets [`STARTUP_ALLOWANCE`] more than the timeout. Its
//! stderr goes to the run's log, a line at a time.

use crate::history::Ended;
use crate::history::text::{clip_message, escape, excerpt};
use crate::system::{self, BoxFuture, Endpoint};
use crate::workload::Operation;
use serde::Deserialize;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

/// The longest reply line read (and stderr line logged): 1 MiB.
const LINE_BYTES_MAX: u64 = 1 << 20;
/// The first wait before starting a program again after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest: a program that cannot start is tried at most this often.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// What a fresh program's first operation gets beyond the operation's
/// timeout: an interpreter's start-up on a loaded machine takes seconds.
const STARTUP_ALLOWANCE: Duration = Duration::from_secs(5);
/// How long an exited program's status is waited for, for the log.
const EXIT_WAIT: Duration = Duration::from_millis(200);

/// The clients of one run: the command and where the nodes are.
pub struct Programs {
    command: Arc<str>,
    endpoints: Vec<Endpoint>,
}

impl Programs {
    pub fn new(command: &str, endpoints: Vec<Endpoint>) -> Programs {
        debug_assert!(!endpoints.is_empty(), "a test has at least one node");
        Programs {
            command: command.into(),
            endpoints,
        }
    }
}

impl system::Clients for Programs {
    fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    /// A client for one worker; its program starts at the first operation.
    fn open(&self, home: usize) -> Box<dyn system::Client> {
        let nodes: Vec<&str> = self.endpoints.iter().map(|e| e.addr.as_str()).collect();
        Box::new(Program {
            command: self.command.clone(),
            nodes: nodes.join(","),
            home: self.endpoints[home % self.endpoints.len()].clone(),
            running: None,
            next_id: 1,
            failures: 0,
            not_before: None,
        })
    }
}

/// One worker's program, started when needed.
pub struct Program {
    command: Arc<str>,
    /// Every node's address, in host order, for `FAULTLINE_NODES`.
    nodes: String,
    home: Endpoint,
    running: Option<Running>,
    next_id: u64,
    /// Failures since the last good reply: the backoff grows with them.
    failures: u32,
    /// When the program may be started again.
    not_before: Option<Instant>,
}

/// A started program and its pipes. Dropping it kills its process group.
struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling the process group our own child leads.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

/// A reply line.
#[derive(Deserialize)]
struct Reply {
    id: u64,
    #[serde(rename = "type")]
    kind: ReplyType,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReplyType {
    Ok,
    Fail,
    Info,
}

impl system::Client for Program {
    fn invoke<'a>(
        &'a mut self,
        op: &'a Operation,
        timeout: Duration,
    ) -> BoxFuture<'a, (String, Ended)> {
        Box::pin(async move {
            if self.running.is_none()
                && let Some(at) = self.not_before
                && at > Instant::now()
            {
                // Nothing is sent while the program backs off: a definite failure.
                let wait = at - Instant::now();
                return (
                    self.home.name.clone(),
                    Ended::Fail(format!("the client program restarts in {wait:?}")),
                );
            }
            // A fresh program's first answer may take its start-up too.
            let allowed = match self.running {
                None => timeout + STARTUP_ALLOWANCE,
                Some(_) => timeout,
            };
            let ended = match tokio::time::timeout(allowed, self.call(op)).await {
                Ok(Ok(ended)) => {
                    self.failures = 0;
                    ended
                }
                Ok(Err(why)) => self.failed(why).await,
                Err(_) => self.failed(format!("no answer within {allowed:?}")).await,
            };
            (self.home.name.clone(), ended)
        })
    }

    /// The program stays: what it learnt is its own business.
    fn reset(&mut self) {}
}

impl Program {
    /// Sends `op` and reads its reply; an error is why the program is no
    /// longer to be trusted.
    async fn call(&mut self, op: &Operation) -> Result<Ended, String> {
        if self.running.is_none() {
            self.running = Some(self.spawn()?);
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut line = json!({
            "id": id,
            "f": op.f(),
            "value": op.history_value(),
            "node": self.home.addr,
        })
        .to_string();
        line.push('\n');
        let Some(running) = self.running.as_mut() else {
            unreachable!("started above")
        };
        if let Err(e) = running.stdin.write_all(line.as_bytes()).await {
            return Err(format!("cannot write to the client program: {e}"));
        }
        let _ = running.stdin.flush().await;
        let mut reply = Vec::new();
        let read = (&mut running.stdout)
            .take(LINE_BYTES_MAX + 1)
            .read_until(b'\n', &mut reply)
            .await;
        match read {
            Err(e) => return Err(format!("cannot read from the client program: {e}")),
            Ok(0) => {
                return Err(format!(
                    "the client program exited ({})",
                    exit_status(running).await
                ));
            }
            Ok(_) if !reply.ends_with(b"\n") && reply.len() as u64 > LINE_BYTES_MAX => {
                return Err(format!(
                    "the client program wrote a line longer than {LINE_BYTES_MAX} bytes"
                ));
            }
            Ok(_) => {}
        }
        parse(&reply, id)
    }

    /// Starts the program with the nodes in its environment.
    fn spawn(&self) -> Result<Running, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&*self.command)
            .env("FAULTLINE_NODES", &self.nodes)
            .env("FAULTLINE_NODE", &self.home.addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that killing it reaches what `sh` started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the client program {:?}: {e}",
                    excerpt(&self.command)
                )
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three are piped")
        };
        let node = self.home.name.clone();
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut stderr)
                    .take(LINE_BYTES_MAX)
                    .read_until(b'\n', &mut line)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        tracing::info!("client program (node {node}): {}", escape(text.trim_end()));
                    }
                }
            }
        });
        Ok(Running {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// The program failed: kill it, say why, and back off before the next.
    async fn failed(&mut self, why: String) -> Ended {
        self.running = None;
        self.failures = self.failures.saturating_add(1);
        let backoff = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16).saturating_sub(1))
            .min(BACKOFF_MAX);
        self.not_before = Some(Instant::now() + backoff);
        tracing::warn!(
            "client program for {} restarted (in {backoff:?}): {why}",
            self.home.name
        );
        Ended::Info(why)
    }
}

/// How an exited program ended, if it says so soon.
async fn exit_status(running: &mut Running) -> String {
    match tokio::time::timeout(EXIT_WAIT, running.child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => "end of its output".to_string(),
    }
}

/// A reply line to request `id`, or why it is not one.
fn parse(line: &[u8], id: u64) -> Result<Ended, String> {
    let text = String::from_utf8_lossy(line);
    let garbage = |why: String| {
        format!(
            "the client program answered {:?}: {why}",
            excerpt(text.trim_end())
        )
    };
    let reply: Reply =
        serde_json::from_slice(line).map_err(|e| garbage(clip_message(&e.to_string())))?;
    if reply.id != id {
        return Err(garbage(format!("expected id {id}")));
    }
    let error = || match &reply.error {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match reply.kind {
        ReplyType::Ok => match reply.value {
            Some(value) => Ok(Ended::Ok(value)),
            None => Err(garbage("an `ok` reply needs a `value`".into())),
        },
        ReplyType::Fail => Ok(Ended::Fail(error())),
        ReplyType::Info => Ok(Ended::Info(error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::Clients;

    fn programs(script: &str) -> Programs {
        Programs::new(
            &format!("python3 -c '{script}'"),
            vec![Endpoint {
                name: "n1".into(),
                addr: "10.9.9.1:7000".into(),
            }],
        )
    }

    fn read() -> Operation {
        Operation::Read { key: 3 }
    }

    #[test]
    fn a_reply_is_read_by_its_id_and_type() {
        assert!(matches!(
            parse(br#"{"id":2,"type":"ok","value":[3,5]}"#, 2),
            Ok(Ended::Ok(v)) if v == json!([3, 5])
        ));
        assert!(matches!(
            parse(br#"{"id":2,"type":"fail","error":"no"}"#, 2),
            Ok(Ended::Fail(e)) if e == "no"
        ));
        assert!(matches!(
            parse(br#"{"id":2,"type":"info"}"#, 2),
            Ok(Ended::Info(_))
        ));
        for garbage in [
            &br#"{"id":1,"type":"ok","value":1}"#[..],
            br#"{"id":2,"type":"ok"}"#,
            br#"{"id":2,"type":"maybe","value":1}"#,
            b"hello",
        ] {
            let Err(e) = parse(garbage, 2) else {
                panic!("{garbage:?} read as a reply")
            };
            assert!(e.starts_with("the client program answered"), "{e}");
        }
    }

    /// The program sees the operation and the node, and its reply is the
    /// completion.
    #[tokio::test]
    async fn the_program_answers_each_operation() {
        let echo = "import json,os,sys\nfor l in sys.stdin:\n r=json.loads(l)\n print(json.dumps({\"id\":r[\"id\"],\"type\":\"ok\",\"value\":[r[\"value\"][0],r[\"node\"],os.environ[\"FAULTLINE_NODES\"],r[\"f\"]]}),flush=True)";
        let mut client = programs(echo).open(0);
        for _ in 0..3 {
            let (node, ended) = client.invoke(&read(), Duration::from_secs(10)).await;
            assert_eq!(node, "n1");
            assert!(
                matches!(&ended, Ended::Ok(v) if *v == json!([3, "10.9.9.1:7000", "10.9.9.1:7000", "read"])),
                "{ended:?}"
            );
        }
    }

    /// Garbage, a dead program and a silent one each make one `info`; the
    /// program is started again and answers the next operation.
    #[tokio::test]
    async fn a_program_that_fails_is_restarted_and_its_op_is_info() {
        // Counts its starts in a file: start 1 answers garbage, start 2
        // exits, start 3 hangs, start 4 answers.
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("starts");
        let script = format!(
            "import json,sys,time\np=\"{}\"\ntry: n=int(open(p).read())+1\nexcept Exception: n=1\nopen(p,\"w\").write(str(n))\nfor l in sys.stdin:\n r=json.loads(l)\n if n==1: print(\"garbage\",flush=True)\n elif n==2: sys.exit(7)\n elif n==3: time.sleep(60)\n else: print(json.dumps({{\"id\":r[\"id\"],\"type\":\"fail\",\"error\":\"nope\"}}),flush=True)",
            count.display()
        );
        let mut client = programs(&script).open(0);
        let mut errors = Vec::new();
        let mut backoffs = 0;
        while errors.len() < 3 && backoffs < 100 {
            match client.invoke(&read(), Duration::from_secs(1)).await.1 {
                Ended::Info(e) => errors.push(e),
                // Backing off: nothing sent; a moment later it starts again.
                Ended::Fail(e) if e.starts_with("the client program restarts in") => {
                    backoffs += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(backoffs > 0, "no backoff after a failure");
        assert!(errors[0].contains("answered \"garbage\""), "{errors:?}");
        assert!(errors[1].contains("exited (exit status: 7)"), "{errors:?}");
        assert!(errors[2].contains("no answer within 6s"), "{errors:?}");
        tokio::time::sleep(BACKOFF_MAX).await;
        let (_, ended) = client.invoke(&read(), Duration::from_secs(3)).await;
        assert!(matches!(&ended, Ended::Fail(e) if e == "nope"), "{ended:?}");
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "4");
    }
}
