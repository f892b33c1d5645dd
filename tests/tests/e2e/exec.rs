//! End-to-end tests of `berth exec` through the real binary: a command runs in a running
//! task's container and the CLI exits with its exit code; a task started without
//! `enableExecuteCommand` is refused with ECS's wording (turning it on later opens only
//! tasks started afterwards, as on ECS); the same on Docker, where the command runs
//! inside the container (the demo image is `FROM scratch`, so the command is the demo
//! binary itself). The Docker test fails, never skips, when the engine does not answer.
//!
//! Interactive sessions (`-i`, `-t`) go through the same binary: stdin fed to a shell
//! streams in, its output and exit code come back; `-t` gives the command a terminal;
//! a task started without `enableExecuteCommand` is refused alike. On Docker the shell
//! is a static busybox in a `FROM scratch` image built here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::Result;
use berth_testkit::{bin, demo_image, quickstart, require_docker, wait_until, Server};

const SETTLE: Duration = Duration::from_secs(90);
const NOT_ENABLED: &str = "InvalidParameterException: The execute command failed because execute command was not enabled when the task was run";

/// The quickstart with one task, `enableExecuteCommand` on or off.
fn stack(dir: &Path, enabled: bool) -> PathBuf {
    let base = std::fs::read_to_string(quickstart(dir, 1)).unwrap();
    let text = if enabled {
        base.replace(
            "    desiredCount: 1\n",
            "    desiredCount: 1\n    enableExecuteCommand: true\n",
        )
    } else {
        base
    };
    assert!(!enabled || text.contains("enableExecuteCommand: true"));
    let p = dir.join(format!("exec-{enabled}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exec(server: &Server, task: &str, command: &[&str]) -> Output {
    let mut args = vec!["exec", task, "--"];
    args.extend_from_slice(command);
    server.cli(&args)
}

fn id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// How long an interactive CLI run may take before the test fails.
const SESSION_BOUND: Duration = Duration::from_secs(60);

/// Runs the CLI against `server` with `input` as its stdin (then closed); fails the test
/// when it runs past [`SESSION_BOUND`].
fn cli_with_stdin(server: &Server, args: &[&str], input: &str) -> Output {
    server.cli_with_stdin(args, input, SESSION_BOUND)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_process_task_returns_its_output_and_exit_code_once_enabled() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&stack(dir.path(), false))).await?;
    let first = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    let first = id(&first[0]).to_string();

    let out = exec(&server, &first, &["true"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(NOT_ENABLED),
        "{}",
        text(&out.stderr)
    );
    // An interactive session is refused alike, before anything runs.
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", &first, "--", "/bin/sh"],
        "touch x\n",
    );
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(NOT_ENABLED),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    // Enabling it on the service does not open the task already running.
    server.apply_ok(&stack(dir.path(), true));
    let out = exec(&server, &first, &["true"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(NOT_ENABLED),
        "{}",
        text(&out.stderr)
    );

    // A task started from now on is open.
    let stopped = server.cli(&["stop", &first]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let second = wait_until("a replacement task", SETTLE, || async {
        let arns = server
            .wait_healthy("whoami", "whoami", 1, Duration::from_secs(5))
            .await
            .ok()?;
        let second = id(&arns[0]).to_string();
        (second != first).then_some(second)
    })
    .await?;
    let task: serde_json::Value = server
        .get(&format!("/v1/clusters/default/tasks/{second}"))
        .await?;
    assert_eq!(task["enableExecuteCommand"], true);

    // The command runs beside the task with its environment, and its exit code is the
    // CLI's.
    let out = exec(
        &server,
        &second,
        &[
            "/bin/sh",
            "-c",
            "echo \"$GREETING\"; echo to-stderr >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from berth\n");
    assert_eq!(text(&out.stderr), "to-stderr\n");
    // The demo binary checks the task's own health endpoint on the port it was given.
    let out = exec(
        &server,
        &second,
        &[
            "/bin/sh",
            "-c",
            "berth-whoami check http://127.0.0.1:$PORT/health",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = server.cli(&["exec", &second, "--container", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("container nope"),
        "{}",
        text(&out.stderr)
    );

    // Interactively: stdin streams into a shell beside the task, with the task's
    // environment; its output and exit code come back.
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", &second, "--", "/bin/sh"],
        "echo \"$GREETING\"\necho to-stderr >&2\nexit 3\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from berth\n");
    assert_eq!(text(&out.stderr), "to-stderr\n");
    // With a terminal (and no stdin): the command's stdin is a pseudo-terminal.
    let out = cli_with_stdin(&server, &["exec", "-t", &second, "--", "tty"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
    // Both: what is typed reaches the shell on its terminal; stdout and stderr merge.
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", "-t", &second, "--", "/bin/sh"],
        "echo typed-$((2 * 3)) >&2; exit 5\n",
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("typed-6"),
        "{}",
        text(&out.stdout)
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // Each exec that ran is a service event, and every attempt is counted.
    let svc = server.get("/v1/clusters/default/services/whoami").await?;
    let events: Vec<&str> = svc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains(" ran "))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[1].contains(&format!(
            "in container web of (task {second}): exit code 3."
        )),
        "{events:?}"
    );
    let sessions: Vec<&str> = svc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains(" started an interactive session of "))
        .collect();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert!(
        sessions.iter().any(|m| m.ends_with(&format!(
            "[\"tty\"] in container web of (task {second}) with a terminal."
        ))),
        "{sessions:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    for (outcome, n) in [
        ("refused", 3),
        ("exited_nonzero", 3),
        ("exited_zero", 2),
        ("failed", 1),
    ] {
        let series = format!(
            "berth_exec_commands_total{{cluster=\"default\",outcome=\"{outcome}\",service=\"whoami\"}} {n}"
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_docker_task_runs_inside_its_container() -> Result<()> {
    demo_image();
    let dir = tempfile::tempdir()?;
    let server = Server::start_with("docker", Some(&stack(dir.path(), true))).await?;
    let arns = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    let task = id(&arns[0]).to_string();

    // Port 8080 is the container's own: reachable at that number only from inside.
    let whoami = "/usr/local/bin/berth-whoami";
    let out = exec(
        &server,
        &task,
        &[whoami, "check", "http://127.0.0.1:8080/health"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = exec(&server, &task, &[whoami, "check", "http://127.0.0.1:1/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("whoami check: http://127.0.0.1:1/"),
        "{}",
        text(&out.stderr)
    );
    let out = server.cli(&["-o", "json", "exec", &task, "--", whoami, "resolve"]);
    assert_eq!(out.status.code(), Some(64));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(answer["container"], "web");
    assert_eq!(answer["exitCode"], 64);
    Ok(())
}

/// One service running a static busybox (`FROM scratch`, built here from Debian's
/// busybox-static) that sleeps, with exec enabled; no load balancer.
fn busybox_stack(dir: &Path) -> PathBuf {
    let binary = Path::new("/bin/busybox");
    assert!(
        binary.is_file(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test does)"
    );
    let out = Command::new(bin("berth"))
        .args([
            "image",
            "build-demo",
            "--tag",
            "berth-busybox:latest",
            "--binary",
        ])
        .arg(binary)
        .output()
        .expect("run berth image build-demo");
    assert!(
        out.status.success(),
        "building the busybox image failed: {}",
        text(&out.stderr)
    );
    let text = r#"
clusters:
  - clusterName: default
taskDefinitions:
  - family: shell
    networkMode: bridge
    containerDefinitions:
      - name: shell
        image: berth-busybox:latest
        entryPoint: ["/usr/local/bin/busybox"]
        command: ["sleep", "3600"]
        memoryReservation: 16
        stopTimeout: 2
        environment:
          - name: GREETING
            value: hello from busybox
services:
  - serviceName: shell
    cluster: default
    taskDefinition: shell
    desiredCount: 1
    enableExecuteCommand: true
"#;
    let p = dir.join("busybox.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_into_a_docker_task_runs_a_shell_inside_its_container() -> Result<()> {
    require_docker();
    let dir = tempfile::tempdir()?;
    let server = Server::start_with("docker", Some(&busybox_stack(dir.path()))).await?;
    let task = wait_until("a running busybox task", SETTLE, || async {
        let tasks = server.service_tasks("shell").await.ok()?;
        let running = tasks.iter().find(|t| t["lastStatus"] == "RUNNING")?;
        Some(id(running["taskArn"].as_str()?).to_string())
    })
    .await?;

    let shell = "/usr/local/bin/busybox";
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", &task, "--", shell, "sh"],
        "echo \"$GREETING\"; echo hi; echo oops >&2\nexit 3\n",
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from busybox\nhi\n");
    assert_eq!(text(&out.stderr), "oops\n");

    let out = cli_with_stdin(
        &server,
        &["exec", "-i", "-t", &task, "--", shell, "sh"],
        "tty; exit 4\n",
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("/dev/pts/"),
        "{}",
        text(&out.stdout)
    );
    Ok(())
}

/// A new pseudo-terminal of `rows` × `cols`: its master side and its slave side.
fn local_terminal(rows: u16, cols: u16) -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size).unwrap();
    (master, slave)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_it_on_a_local_terminal_makes_it_raw_sends_its_size_and_resizes_and_restores_it(
) -> Result<()> {
    use rustix::termios::{tcgetattr, LocalModes};
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&stack(dir.path(), true))).await?;
    let arns = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    let task = id(&arns[0]).to_string();

    let (master, slave) = local_terminal(33, 111);
    let before = tcgetattr(&slave)?;
    assert!(before
        .local_modes
        .contains(LocalModes::ICANON | LocalModes::ECHO));
    let mut child = Command::new(bin("berth"))
        .args(["exec", "-i", "-t", &task, "--", "/bin/sh"])
        .env("BERTH_ENDPOINT", &server.api)
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave.try_clone()?)
        .spawn()?;
    // The CLI enters raw mode once the session is open.
    wait_until("the CLI's terminal in raw mode", SESSION_BOUND, || async {
        let now = tcgetattr(&slave).ok()?;
        (!now
            .local_modes
            .intersects(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG))
        .then_some(())
    })
    .await?;
    // The remote shell's terminal has the local one's size. Typed as on a keyboard:
    // Enter is a carriage return. The echo shows `stty size`, only the answer the size.
    rustix::io::ioctl_fionbio(&master, true)?;
    let shown = std::sync::Mutex::new(Vec::new());
    let read_shown = || {
        let mut buf = [0u8; 4096];
        let mut shown = shown.lock().unwrap();
        while let Ok(n) = rustix::io::read(&master, &mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        text(&shown)
    };
    rustix::io::write(&master, b"stty size\r")?;
    wait_until("the first size", SESSION_BOUND, || {
        let seen = read_shown().contains("33 111");
        async move { seen.then_some(()) }
    })
    .await?;
    // A resize reaches the CLI as SIGWINCH (sent here: the CLI's terminal is not its
    // controlling one) and the remote terminal follows; `stty size` is asked until it
    // answers the new size, since the resize and the typing travel separately.
    let size = rustix::termios::Winsize {
        ws_row: 44,
        ws_col: 122,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGWINCH,
    )?;
    wait_until("the new size", SESSION_BOUND, || {
        let seen = read_shown().contains("44 122");
        if !seen {
            let _ = rustix::io::write(&master, b"stty size\r");
        }
        async move { seen.then_some(()) }
    })
    .await?;
    rustix::io::write(&master, b"exit 7\r")?;
    let status = wait_until("the CLI's exit", SESSION_BOUND, || {
        let exited = child.try_wait().ok().flatten();
        async move { exited }
    })
    .await?;
    assert_eq!(status.code(), Some(7));

    let after = tcgetattr(&slave)?;
    assert_eq!(after.local_modes, before.local_modes);
    assert_eq!(after.input_modes, before.input_modes);
    assert_eq!(after.output_modes, before.output_modes);
    Ok(())
}
