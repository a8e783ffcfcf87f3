//! Per-node sharing of an attached image: launches of the same image by the same user on the
//! same node (the ranks of an MPI job) join one *holder* process instead of each creating a
//! user namespace and mounting the image again.
//!
//! The first launch attaches the image itself: it creates the user namespace (unprivileged:
//! the caller's uid and gid mapped to themselves) and a mount namespace, mounts the image on
//! `<runtime dir>/<key>.mnt` (kernel squashfs on a loop device as root, the in-tree FUSE server
//! otherwise, or, without a usable `/dev/fuse`, the image unpacked once into a temporary
//! directory bound there), and forks the holder, a daemon (see
//! [`sifr_sys::process::spawn_daemon`]) that keeps those namespaces and listens on
//! `<runtime dir>/<key>.sock`. The first launch does not wait for the holder: it goes on as
//! every later one does. A later launch connects, is registered, opens the holder's
//! `/proc/PID/ns/{user,mnt}` and joins them. Either way the launch then unshares a mount
//! namespace of its own: a copy that holds the image mount, where it makes its own binds and
//! `pivot_root`s as an unshared launch does ([`crate::exec`]). Because every rank is then in
//! the *same* user namespace, the kernel allows cross-memory attach (`process_vm_readv`)
//! between them, which Open MPI's shared-memory transport needs for large messages; and the
//! SIF file is opened by the first launch and the one FUSE server only, however many ranks
//! start.
//!
//! Lifetime: a launch stays registered as long as its connection is open (the launcher keeps
//! it until the command exits; it is close-on-exec, so the command never sees it). When the last
//! connection closes and the idle time has passed, the holder removes its socket under the
//! runtime directory's lock, unmounts its copy and exits; the FUSE server ends by itself once no
//! namespace holds the mount (it has no parent-death signal, so a killed holder does not take
//! running ranks down with it). A holder that died leaves a socket nobody answers: the next
//! launch removes it under the lock and starts a new holder.
//!
//! Races: the key directory lock (`flock` on the runtime directory) is held by a launch while it
//! attaches the image and starts a holder (the holder's socket is bound before the lock is
//! let go, so later launches queue on it), and by a holder while it retires; a holder only *tries* the
//! lock (it must keep accepting the connection of a launch that holds it) and retires only if no
//! connection is pending once it has it. A later launch proceeds only after the holder's
//! answer, which is sent after registration, and the first launch is registered from the
//! holder's first instant (a connected socket pair), so a registered launch never sees its
//! holder retire.
//!
//! The key covers the user (uid, gid), the image file (device, inode, size, modification and
//! change times) and the Slurm job step, if any: two steps of one job do not share, because
//! Slurm ends a step's processes (the holder would be one) when the step ends.
//!
//! Must not: share across users (the runtime directory is `0700`, owned by the user, checked;
//! the holder checks every peer's uid), let the holder keep the launcher's stdio or inherited
//! pipes open (`mpirun` would wait for them), or print.

use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::error::ShareError;
use crate::error::{AttachError, attach_step};
use crate::image::{Attach, Format, Image};

/// How long a launch waits for a holder's answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a holder that wants to retire retries the lock a launch holds.
const RETIRE_RETRY: Duration = Duration::from_millis(20);
/// The holder's process name.
pub const HOLDER_NAME: &str = "sifr-holder";
/// The first line of the holder's answer; bumped when the answer changes.
const PROTOCOL: &str = "sifr-share 2";

/// What a holder is asked to hold.
#[derive(Debug, Clone)]
pub struct Spec {
    pub image: Image,
    /// [`Attach::Loop`] (as root), [`Attach::Fuse`], or [`Attach::Extract`] (the holder
    /// unpacks the image once for all launches, and removes it when it retires).
    pub attach: Attach,
    pub uid: u32,
    pub gid: u32,
    /// Map `uid`/`gid` to themselves in a new user namespace (unprivileged launches).
    pub user_ns: bool,
    /// Who a FUSE mount presents every file as owned by (see `exec::own_owner`).
    pub owner: Option<sifr_squashfs::fuse::Owner>,
    /// How long the holder stays after the last launch left.
    pub idle: Duration,
    /// What its FUSE server looks up and decodes ahead (see
    /// [`crate::attach::Staged::set_prefetch`]).
    pub prefetch: sifr_squashfs::fuse::Prefetch,
}

/// Where a user's holders live: `$TMPDIR/sifr-UID` (created `0700`; refused unless it is a real
/// directory owned by `uid` that nobody else may enter).
fn runtime_dir(uid: u32) -> Result<PathBuf, ShareError> {
    let path = std::env::temp_dir().join(format!("sifr-{uid}"));
    let dir_err = |source| ShareError::Dir {
        path: path.clone(),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(dir_err(e)),
    }
    let md = std::fs::symlink_metadata(&path).map_err(dir_err)?;
    if !md.is_dir() || md.uid() != uid || md.mode() & 0o077 != 0 {
        return Err(ShareError::UnsafeDir { path, uid });
    }
    Ok(path)
}

/// The sharing key of `path` for this user (and kind of launch: with a user namespace of its
/// own, or as root without one): see the module docs for what it covers.
fn key(path: &Path, uid: u32, gid: u32, user_ns: bool) -> std::io::Result<String> {
    let md = std::fs::metadata(path)?;
    let step = |v: &str| std::env::var(v).unwrap_or_default();
    let text = format!(
        "{uid}:{gid}:{user_ns}:{}:{}:{}:{}.{}:{}.{}:{}:{}",
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        step("SLURM_JOB_ID"),
        step("SLURM_STEP_ID"),
    );
    // FNV-1a: stable, tiny, and collisions only cost sharing (the holder re-checks nothing
    // else, so the key must cover everything that makes two launches incompatible).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

/// The paths of one key.
#[derive(Debug, Clone)]
struct Paths {
    dir: PathBuf,
    sock: PathBuf,
    mnt: PathBuf,
}

impl Paths {
    fn of(path: &Path, uid: u32, gid: u32, user_ns: bool) -> Result<Paths, ShareError> {
        let dir = runtime_dir(uid)?;
        let k = key(path, uid, gid, user_ns).map_err(|source| ShareError::Dir {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Paths {
            sock: dir.join(format!("{k}.sock")),
            mnt: dir.join(format!("{k}.mnt")),
            dir,
        })
    }
}

/// A launch registered with a holder. Keep it until the command has exited: dropping it
/// deregisters the launch.
#[derive(Debug)]
pub struct Joined {
    /// The open connection: the registration.
    _conn: UnixStream,
    user_ns: Option<OwnedFd>,
    /// `None` for the launch that attached the image: it is in the namespaces already.
    mnt_ns: Option<OwnedFd>,
    /// The unpacked image, when this launch unpacked it and no holder took it over: removed
    /// when the launch ends.
    _extracted: Option<crate::attach::Extracted>,
    /// The image mount, in the holder's mount namespace.
    pub mount: PathBuf,
    /// The image as the holder attached it.
    pub image: Image,
    /// The image mount, detached, when this launch attached the image but no holder took it
    /// over (nothing would unmount `mount` in the namespaces this launch leaves, where the FUSE
    /// server lives, so it is unmounted there at once).
    tree: Option<OwnedFd>,
}

impl Joined {
    /// The image mount to attach, when no holder keeps it on [`Joined::mount`] (then clone
    /// that instead).
    pub fn take_tree(&mut self) -> Option<OwnedFd> {
        self.tree.take()
    }

    /// Join the holder's namespaces (user first, when there is one). Runs across the namespace
    /// change; the process must be single-threaded. The caller then unshares its own mount
    /// namespace.
    pub fn enter(&self) -> Result<(), ShareError> {
        let Some(mnt_ns) = &self.mnt_ns else {
            return Ok(());
        };
        sifr_sys::ns::join(self.user_ns.as_ref().map(|f| f.as_fd()), mnt_ns.as_fd()).map_err(
            |source| ShareError::Sys {
                step: "join the node's shared namespaces",
                source,
            },
        )
    }
}

/// The runtime directory's lock, taken by [`find`] when no holder answered and kept until this
/// launch has started one ([`join_or_start`]) or given up ([`release`]): launches that start at
/// the same moment (`mpirun -np 32`) then wait for the first one's holder instead of each
/// opening the image. A lock is per open file, so the same file is reused, never reopened.
static RESERVED: std::sync::Mutex<Option<(PathBuf, std::fs::File)>> = std::sync::Mutex::new(None);

fn reserved() -> std::sync::MutexGuard<'static, Option<(PathBuf, std::fs::File)>> {
    RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Release the lock [`find`] kept, if any (the launch attaches the image on its own, or failed).
pub fn release() {
    if let Some((_, dir)) = reserved().take() {
        sifr_sys::ipc::unlock(dir.as_fd());
    }
}

/// Lock the runtime directory `dir`, or find it already locked by this process.
fn lock_dir(dir: &Path) -> Result<std::fs::File, ShareError> {
    if let Some((held, file)) = reserved().take() {
        if held == dir {
            return Ok(file);
        }
        sifr_sys::ipc::unlock(file.as_fd());
    }
    let file = std::fs::File::open(dir).map_err(|source| ShareError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    sifr_sys::ipc::lock_exclusive(
        file.as_fd(),
        sifr_sys::ipc::LockWait::Block,
        &dir.display().to_string(),
    )
    .map_err(|source| ShareError::Sys {
        step: "lock the runtime directory",
        source,
    })?;
    Ok(file)
}

/// Join a running holder of `path` for this user, if there is one; never starts one. Used
/// before the image is even opened, so ranks that find a holder never open the SIF file. When
/// none answers, the runtime directory stays locked for this launch, which is expected to call
/// [`join_or_start`] (through `exec::run_image`) or [`release`].
pub fn find(path: &Path, uid: u32, gid: u32, user_ns: bool) -> Option<Joined> {
    let paths = Paths::of(path, uid, gid, user_ns).ok()?;
    // Without waiting first: the common case of a running holder costs no lock.
    if let Ok(Some(j)) = connect(&paths, path) {
        return Some(j);
    }
    let dir = lock_dir(&paths.dir).ok()?;
    match connect(&paths, path) {
        Ok(Some(j)) => {
            sifr_sys::ipc::unlock(dir.as_fd());
            Some(j)
        }
        other => {
            if let Err(e) = other {
                tracing::debug!("not joining a holder: {e}");
            }
            *reserved() = Some((paths.dir.clone(), dir));
            None
        }
    }
}

/// Join the holder of `spec.image`; if none runs, attach the image in new namespaces of this
/// process and start a holder that keeps them (see the module docs). Must be called from a
/// single-threaded process. An error other than [`ShareError::Attach`] leaves the process as it
/// was, free to attach the image on its own.
pub fn join_or_start(spec: &Spec) -> Result<Joined, ShareError> {
    let paths = Paths::of(&spec.image.path, spec.uid, spec.gid, spec.user_ns)?;
    let dir = lock_dir(&paths.dir)?;
    let r = join_or_start_locked(spec, &paths);
    sifr_sys::ipc::unlock(dir.as_fd());
    r
}

fn join_or_start_locked(spec: &Spec, paths: &Paths) -> Result<Joined, ShareError> {
    if let Some(j) = connect(paths, &spec.image.path)? {
        return Ok(j);
    }
    // Whatever is there is stale: a holder that died (one that retires removes its socket
    // under this lock). Holders of other images that died are swept too.
    let _ = std::fs::remove_file(&paths.sock);
    sweep(&paths.dir);
    match std::fs::DirBuilder::new().mode(0o700).create(&paths.mnt) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(ShareError::Dir {
                path: paths.mnt.clone(),
                source,
            });
        }
    }
    // Nothing in this process has changed yet: a failure here lets the launch attach the
    // image on its own, which reports any real problem with it in its own words.
    let sock_err = |source| ShareError::Socket {
        path: paths.sock.clone(),
        source,
    };
    let listener = UnixListener::bind(&paths.sock).map_err(sock_err)?;
    let unbind = || {
        let _ = std::fs::remove_file(&paths.sock);
    };
    let pair_and_stage = || -> Result<_, ShareError> {
        let pair = UnixStream::pair().map_err(sock_err)?;
        let (staged, extracted) =
            crate::attach::stage(&spec.image, &spec.attach).map_err(|e| ShareError::Stage {
                path: spec.image.path.clone(),
                message: e.to_string(),
            })?;
        Ok((pair, staged, extracted))
    };
    // A launch that fails before attaching (a corrupt image) leaves neither its socket nor
    // its empty mount point: one would be left per image otherwise.
    let abandon = || {
        unbind();
        let _ = std::fs::remove_dir(&paths.mnt);
    };
    let ((mine, its), mut staged, extracted) = pair_and_stage().inspect_err(|_| abandon())?;
    staged.set_prefetch(spec.prefetch.clone());
    // From here on this process is in the namespaces it shares: a failure is the launch's.
    let fatal = |e: AttachError| {
        // `remove_dir` leaves a mount point that is still mounted (busy) alone.
        abandon();
        ShareError::Attach(Box::new(e))
    };
    attach_here(spec, &paths.mnt, &mut staged).map_err(fatal)?;
    // The holder is forked into these namespaces. It removes an unpacked tree when it retires;
    // the copy of the guard it gets must not be dropped here, where the closure is dropped
    // unrun.
    let for_holder = extracted.as_ref().map(|e| e.try_clone());
    let spawned = match for_holder {
        // The guard cannot be handed over: this launch keeps it, and no holder starts.
        Some(None) => Err("cannot hand the unpacked image over".to_string()),
        for_holder => {
            let for_holder = std::mem::ManuallyDrop::new(for_holder.flatten());
            let mut keep = vec![listener.as_raw_fd(), its.as_raw_fd()];
            keep.extend(for_holder.as_ref().map(|e| e.fds()).into_iter().flatten());
            let holder_spec = spec.clone();
            let holder_paths = paths.clone();
            sifr_sys::process::spawn_daemon(&keep, move || {
                let _extracted = std::mem::ManuallyDrop::into_inner(for_holder);
                holder(&holder_spec, &holder_paths, listener, its)
            })
            .map_err(|e| e.to_string())
        }
    };
    let (extracted, tree) = match spawned {
        Ok(()) => {
            // The holder removes it.
            std::mem::forget(extracted);
            (None, None)
        }
        Err(e) => {
            // This launch still has the image; the next one starts a holder.
            tracing::debug!(
                "cannot start the holder of `{}`: {e}",
                spec.image.path.display()
            );
            unbind();
            // Only this launch's own copy may keep the image (and the FUSE server) alive.
            let tree = sifr_sys::mount::clone_tree(&paths.mnt)
                .map_err(attach_step("clone the image mount"))
                .map_err(fatal)?;
            let _ = sifr_sys::mount::umount_detach(&paths.mnt);
            // Under the lock, so no other launch is mounting there.
            let _ = std::fs::remove_dir(&paths.mnt);
            (extracted, Some(tree))
        }
    };
    Ok(Joined {
        _conn: mine,
        user_ns: None,
        mnt_ns: None,
        _extracted: extracted,
        mount: paths.mnt.clone(),
        image: spec.image.clone(),
        tree,
    })
}

/// The first launch's half of sharing: new user (unprivileged) and mount namespaces for this
/// process, and `staged` mounted on `mnt` there (an unpacked image bound, once for every
/// launch).
fn attach_here(
    spec: &Spec,
    mnt: &Path,
    staged: &mut crate::attach::Staged,
) -> Result<(), AttachError> {
    sifr_sys::ns::unshare(sifr_sys::ns::Namespaces {
        user: spec.user_ns,
        mount: true,
        ..Default::default()
    })
    .map_err(attach_step("create the shared namespaces"))?;
    if spec.user_ns {
        sifr_sys::ns::write_id_maps(spec.uid, spec.gid)
            .map_err(attach_step("map the user's ids"))?;
    }
    sifr_sys::mount::make_rslave(Path::new("/"))
        .map_err(attach_step("make the shared mount namespace a slave"))?;
    match staged.host_dir() {
        Some(dir) => {
            sifr_sys::mount::rbind(dir, mnt).map_err(attach_step("bind the unpacked image"))
        }
        None => staged.mount_detached(mnt, spec.owner),
    }
}

/// Remove the sockets nobody answers on, and their mount points, from the runtime directory
/// `dir` (its lock held): what holders that were killed left. A mount point with no socket
/// beside it (an earlier version's failed attach) goes too; `remove_dir` takes only an empty
/// directory that nothing is mounted on, and under the lock no launch is setting one up.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "sock")
            && UnixStream::connect(&path)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(path.with_extension("mnt"));
        } else if path.extension().is_some_and(|x| x == "mnt")
            && !path.with_extension("sock").exists()
        {
            let _ = std::fs::remove_dir(&path);
        }
    }
}

/// Connect to the holder of `paths`: `Ok(None)` when none answers (no socket, a stale one, or
/// a holder that is retiring).
fn connect(paths: &Paths, image_path: &Path) -> Result<Option<Joined>, ShareError> {
    let sock_err = |source| ShareError::Socket {
        path: paths.sock.clone(),
        source,
    };
    let mut conn = match UnixStream::connect(&paths.sock) {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(sock_err(e)),
    };
    let holder = sifr_sys::ipc::peer(&conn).map_err(|source| ShareError::Sys {
        step: "identify the holder",
        source,
    })?;
    let (uid, _) = sifr_sys::process::ids();
    if holder.uid != uid {
        return Err(ShareError::UnsafeDir {
            path: paths.dir.clone(),
            uid,
        });
    }
    conn.set_read_timeout(Some(START_TIMEOUT))
        .map_err(sock_err)?;
    let answer = match read_line(&mut conn) {
        Ok(a) if a.is_empty() => return Ok(None), // retiring
        Ok(a) => a,
        Err(e) => return Err(sock_err(e)),
    };
    let (pid, image) = parse_answer(&answer, image_path).ok_or_else(|| {
        sock_err(std::io::Error::other(format!(
            "unexpected answer `{answer}`"
        )))
    })?;
    // The socket's credentials name the first launch, which bound it; the holder names
    // itself. Trusted as far as the socket's owner is (this user), and checked to be a holder
    // of this user.
    let is_holder = std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|md| md.uid() == uid)
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == HOLDER_NAME);
    if !is_holder {
        return Err(sock_err(std::io::Error::other(format!(
            "process {pid} is not a holder of uid {uid}"
        ))));
    }
    let ns = |name| {
        sifr_sys::ns::open_ns(pid, name).map_err(|source| ShareError::Sys {
            step: "open the holder's namespaces",
            source,
        })
    };
    let mnt_ns = ns("mnt")?;
    // Only a holder of an unprivileged launch has a user namespace of its own.
    let own_user = std::fs::read_link("/proc/self/ns/user").ok();
    let its_user = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    let user_ns = if own_user != its_user {
        Some(ns("user")?)
    } else {
        None
    };
    Ok(Some(Joined {
        _conn: conn,
        user_ns,
        mnt_ns: Some(mnt_ns),
        _extracted: None,
        mount: paths.mnt.clone(),
        image,
        tree: None,
    }))
}

/// One short line (without its newline); empty at EOF. Read in chunks: the writer (a holder
/// answering a launch) sends one line and nothing after it.
fn read_line(r: &mut impl std::io::Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end);
            break;
        }
        if line.len() > 4096 {
            return Err(std::io::Error::other("line too long"));
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// `PROTOCOL pid format offset size`: the holder's pid, and the image as it attached it.
fn answer_line(pid: u32, image: &Image) -> String {
    let format = match image.format {
        Format::Sif => "sif",
        Format::Squashfs => "squashfs",
        Format::Sandbox => "sandbox",
    };
    format!(
        "{PROTOCOL} {pid} {format} {} {}\n",
        image.offset, image.size
    )
}

fn parse_answer(line: &str, path: &Path) -> Option<(i32, Image)> {
    let rest = line.strip_prefix(PROTOCOL)?;
    let mut it = rest.split_whitespace();
    let pid = it.next()?.parse().ok().filter(|p| *p > 0)?;
    let format = match it.next()? {
        "sif" => Format::Sif,
        "squashfs" => Format::Squashfs,
        _ => return None,
    };
    let offset = it.next()?.parse().ok()?;
    let size = it.next()?.parse().ok()?;
    Some((
        pid,
        Image {
            path: std::fs::canonicalize(path).ok()?,
            format,
            offset,
            size,
        },
    ))
}

/// The holder daemon, forked into the namespaces the first launch made, with its socket bound
/// and that launch's registration `first`: serve, retire. Returns its exit status.
fn holder(spec: &Spec, paths: &Paths, listener: UnixListener, first: UnixStream) -> i32 {
    // What `ps -o comm`/`top` show, so an administrator can tell it from a launch.
    sifr_sys::process::set_name(HOLDER_NAME);
    // It serves every rank of the node: not only the core the first rank was bound to.
    sifr_sys::process::unpin();
    holder_serve(spec, paths, listener, vec![first]);
    0
}

fn holder_serve(spec: &Spec, paths: &Paths, listener: UnixListener, clients: Vec<UnixStream>) {
    let answer = answer_line(std::process::id(), &spec.image);
    let mut clients = clients;
    let mut idle_since: Option<Instant> = None;
    loop {
        let timeout = if !clients.is_empty() {
            None
        } else {
            let since = *idle_since.get_or_insert_with(Instant::now);
            let left = spec.idle.saturating_sub(since.elapsed());
            if left.is_zero() {
                if retire(paths, &listener, &answer, spec.uid, &mut clients) {
                    return;
                }
                if clients.is_empty() {
                    Some(RETIRE_RETRY)
                } else {
                    idle_since = None;
                    continue;
                }
            } else {
                Some(left)
            }
        };
        let mut fds = vec![listener.as_fd()];
        fds.extend(clients.iter().map(|c| c.as_fd()));
        let Ok(ready) = sifr_sys::ipc::wait_readable(&fds, timeout) else {
            continue;
        };
        drop(fds);
        // Clients first (indices shift when one leaves), newest last.
        for i in (1..ready.len()).rev() {
            if ready[i] {
                // A registered launch never writes; readable means closed (or misbehaving).
                clients.remove(i - 1);
            }
        }
        // The image died under the holder (its FUSE server was killed): it stops answering and
        // ends, so the next launch finds a stale socket, sweeps it and attaches the image anew,
        // instead of joining a mount that fails every read with ENOTCONN. Running launches keep
        // what they have; the dead mount goes with the last process of the namespace.
        if ready[0] && image_gone(&paths.mnt) {
            tracing::warn!(
                "the shared mount of `{}` is gone; its holder ends",
                spec.image.path.display()
            );
            return;
        }
        if ready[0]
            && let Ok((c, _)) = listener.accept()
        {
            admit(c, &answer, spec.uid, &mut clients);
        }
        if !clients.is_empty() {
            idle_since = None;
        }
    }
}

/// Whether the image mounted at `mnt` (in the holder's namespace) no longer answers: a FUSE
/// mount whose server died fails every access with `ENOTCONN` (`ECONNABORTED` while it dies).
fn image_gone(mnt: &Path) -> bool {
    sifr_sys::fs::fs_answers(mnt).is_err_and(|e| crate::error::fuse_server_died(e.raw_os_error()))
}

/// Register a connection if it comes from our own user, and answer it.
fn admit(mut c: UnixStream, answer: &str, uid: u32, clients: &mut Vec<UnixStream>) {
    match sifr_sys::ipc::peer(&c) {
        Ok(p) if p.uid == uid => {}
        _ => return,
    }
    if c.write_all(answer.as_bytes()).is_ok() {
        clients.push(c);
    }
}

/// Try to retire: under the runtime directory's lock (tried, not waited for: a launch holding
/// it may be waiting for our answer), admit connections still pending; with none, remove the
/// socket, unmount our copy of the image and the mount point. Returns whether it retired.
fn retire(
    paths: &Paths,
    listener: &UnixListener,
    answer: &str,
    uid: u32,
    clients: &mut Vec<UnixStream>,
) -> bool {
    let Ok(dir) = std::fs::File::open(&paths.dir) else {
        return false;
    };
    if !matches!(
        sifr_sys::ipc::lock_exclusive(dir.as_fd(), sifr_sys::ipc::LockWait::Try, ""),
        Ok(true)
    ) {
        return false;
    }
    let _ = listener.set_nonblocking(true);
    while let Ok((c, _)) = listener.accept() {
        let _ = c.set_nonblocking(false);
        admit(c, answer, uid, clients);
    }
    let _ = listener.set_nonblocking(false);
    if !clients.is_empty() {
        sifr_sys::ipc::unlock(dir.as_fd());
        return false;
    }
    let _ = std::fs::remove_file(&paths.sock);
    let _ = sifr_sys::mount::umount_detach(&paths.mnt);
    let _ = std::fs::remove_dir(&paths.mnt);
    sifr_sys::ipc::unlock(dir.as_fd());
    true
}
