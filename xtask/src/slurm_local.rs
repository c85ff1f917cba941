//! `cargo xtask slurm-local up|down|env`: a one-node Slurm cluster on 127.0.0.1, for the
//! Slurm launcher's tests and for trying it out. Debian's packages (slurmctld, slurmd,
//! slurm-client, munge), started as root without systemd: munge with its own key and socket,
//! `slurmctld -D` and `slurmd -D` with a minimal slurm.conf (linuxproc process tracking and no
//! task plugin, so no cgroups or dbus). Everything lives in `.deps/slurm/`; nothing under
//! /etc is touched, so commands find the cluster through `SLURM_CONF=.deps/slurm/slurm.conf`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The node's name in slurm.conf.
const NODE: &str = "ofqlnode";

pub fn dir(root: &Path) -> PathBuf {
    root.join(".deps/slurm")
}

pub fn conf(root: &Path) -> PathBuf {
    dir(root).join("slurm.conf")
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("up") => up(root),
        Some("down") => down(root),
        Some("env") => {
            println!("export SLURM_CONF={}", conf(root).display());
            Ok(())
        }
        _ => bail!("usage: cargo xtask slurm-local up|down|env"),
    }
}

/// Is the local cluster answering (its node idle or busy)?
pub fn is_up(root: &Path) -> bool {
    conf(root).is_file()
        && Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", conf(root))
            .output()
            .is_ok_and(|o| {
                let s = String::from_utf8_lossy(&o.stdout);
                o.status.success() && ["idle", "mix", "alloc"].iter().any(|w| s.contains(w))
            })
}

fn up(root: &Path) -> Result<()> {
    if is_up(root) {
        eprintln!("slurm-local: already up");
        println!("export SLURM_CONF={}", conf(root).display());
        return Ok(());
    }
    install()?;
    let d = dir(root);
    for sub in ["spool/ctld", "spool/d", "log", "munge"] {
        fs::create_dir_all(d.join(sub))?;
    }
    let munge = d.join("munge");
    set_mode(&munge, 0o700)?;
    let key = munge.join("munge.key");
    if !key.is_file() {
        let mut bytes = vec![0u8; 1024];
        std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)
            .context("cannot read random bytes for the munge key")?;
        fs::write(&key, bytes)?;
    }
    set_mode(&key, 0o400)?;
    let socket = munge.join("munge.socket");
    // munged forks into the background itself; --force lets it run as root.
    let status = Command::new("munged")
        .arg("--force")
        .arg(format!("--key-file={}", key.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
        .arg(format!("--log-file={}", d.join("log/munged.log").display()))
        .arg(format!("--seed-file={}", munge.join("munged.seed").display()))
        .status()
        .context("cannot start munged")?;
    if !status.success() {
        bail!("munged failed to start ({status}); see {}", d.join("log/munged.log").display());
    }
    fs::write(conf(root), slurm_conf(&d, &socket)?)?;
    for (daemon, extra) in [("slurmctld", vec![]), ("slurmd", vec!["-N", NODE])] {
        let log = fs::File::create(d.join(format!("log/{daemon}.out")))?;
        Command::new(daemon)
            .arg("-D")
            .arg("-f")
            .arg(conf(root))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {daemon}"))?;
    }
    let started = Instant::now();
    while !is_up(root) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the local cluster did not come up within 60 s; see {}", d.join("log").display());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("slurm-local: one node ({NODE}) idle; logs in {}", d.join("log").display());
    println!("export SLURM_CONF={}", conf(root).display());
    Ok(())
}

fn down(root: &Path) -> Result<()> {
    let d = dir(root);
    for pid_file in [d.join("slurmd.pid"), d.join("slurmctld.pid"), d.join("munge/munged.pid")] {
        if let Ok(pid) = fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let _ = fs::remove_file(&pid_file);
        }
    }
    eprintln!("slurm-local: stopped");
    Ok(())
}

/// Debian's packages, when the daemons are not there yet.
fn install() -> Result<()> {
    let have = |p: &str| Command::new("sh").args(["-c", &format!("command -v {p}")]).output();
    let missing = ["slurmctld", "slurmd", "sbatch", "munged"]
        .iter()
        .any(|p| !have(p).is_ok_and(|o| o.status.success()));
    if !missing {
        return Ok(());
    }
    eprintln!("slurm-local: installing Debian's slurmctld, slurmd, slurm-client and munge");
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get (the local cluster needs Debian's packages, as root)")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "slurmctld",
        "slurmd",
        "slurm-client",
        "munge",
    ])
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// A minimal slurm.conf: one node with this machine's cores and memory, one partition.
fn slurm_conf(d: &Path, socket: &Path) -> Result<String> {
    let host = String::from_utf8(Command::new("hostname").output()?.stdout)?.trim().to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total_mb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(2048, |kb| kb / 1024);
    let mem = total_mb.saturating_sub(1024).max(512);
    let p = |rel: &str| d.join(rel).display().to_string();
    Ok(format!(
        "# Written by `cargo xtask slurm-local up`: a one-node cluster on 127.0.0.1.
ClusterName=ofqllocal
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket={socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation={ctld}
SlurmdSpoolDir={spool}
SlurmctldPidFile={ctld_pid}
SlurmdPidFile={d_pid}
SlurmctldLogFile={ctld_log}
SlurmdLogFile={d_log}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
InactiveLimit=0
MinJobAge=300
KillWait=30
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=local Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
",
        socket = socket.display(),
        ctld = p("spool/ctld"),
        spool = p("spool/d"),
        ctld_pid = p("slurmctld.pid"),
        d_pid = p("slurmd.pid"),
        ctld_log = p("log/slurmctld.log"),
        d_log = p("log/slurmd.log"),
    ))
}
