//! One launch from one [`Request`]: type it into [`Options`], look at the GPUs and the host,
//! join the node's holder of the image or open the image, judge its CPU facts
//! ([`crate::isa_check`]), plan, and choose how to attach it. What comes out, a [`Prepared`]
//! launch, only needs running.
//!
//! Everything here runs in the launching process before any namespace is entered: it must not
//! start a thread (the ISA check reads stored facts, it never scans). It never prints: GPU
//! warnings go through `tracing`, and an ISA finding to warn about goes to the caller's
//! callback, at the point where it is found, so that its warning comes before any later error.

use std::path::Path;

use crate::exec::{self, ExecError};
use crate::image::{self, Attach, Image};
use crate::isa_check::{self, Finding, Policy, Refused};
use crate::plan::{self, Action, HostFacts, IdMap, LaunchPlan, Options};
use crate::request::{Request, RequestError};
use crate::{gpu, host, share};

/// A launch ready to run.
#[derive(Debug)]
pub enum Prepared {
    /// A holder of the image runs on this node and was joined: the launch that attached the
    /// image checked it (format, architecture, CPU features); this one did not open the file.
    Joined {
        plan: LaunchPlan,
        joined: share::Joined,
    },
    /// The image was opened and judged; it is attached as `attach` when the launch runs.
    Attached {
        plan: LaunchPlan,
        image: Image,
        attach: Attach,
    },
}

impl Prepared {
    /// The plan that runs.
    pub fn plan(&self) -> &LaunchPlan {
        match self {
            Prepared::Joined { plan, .. } | Prepared::Attached { plan, .. } => plan,
        }
    }

    /// The image's path, as the holder or [`image::open`] found it.
    pub fn image_path(&self) -> &Path {
        match self {
            Prepared::Joined { joined, .. } => &joined.image.path,
            Prepared::Attached { image, .. } => &image.path,
        }
    }

    /// Run the launch ([`exec::run_joined`] or [`exec::run_image`]): the command's exit status.
    pub fn run(self) -> Result<i32, ExecError> {
        match self {
            Prepared::Joined { plan, joined } => exec::run_joined(&plan, joined),
            Prepared::Attached {
                plan,
                image,
                attach,
            } => exec::run_image(&plan, &image, &attach),
        }
    }
}

/// Prepare the launch `request` asks for, from the host environment `host_env`. A finding of
/// the ISA check under [`Policy::Warn`] goes to `warn` with the image's path; under
/// [`Policy::Error`] it is a [`RequestError::Isa`].
pub fn prepare(
    request: Request,
    host_env: Vec<(String, String)>,
    warn: impl FnOnce(&Finding, &Path),
) -> Result<Prepared, RequestError> {
    let opts = request.options(&host_env)?;
    let cgroup = cgroup_limits(&request)?;
    let gpu = discover_gpus(&request.gpu, &host_env, gpu::DevView::of(opts.contain))?;
    let mut host = host::gather(host_env).map_err(RequestError::Host)?;
    host.gpu = gpu;
    let Request {
        image,
        action,
        isa_check: policy,
        ..
    } = request;
    if let Some((mut plan, joined)) = join_holder(&opts, &image, &action, &host)? {
        // Judged as a first launch is: the holder's image is the same file.
        judge(&joined.image, &action, policy, warn)?;
        log_notes(&plan);
        plan.cgroup = cgroup;
        return Ok(Prepared::Joined { plan, joined });
    }
    let img = image::open(&image).map_err(RequestError::Image)?;
    judge(&img, &action, policy, warn)?;
    let mut plan = plan::build(&opts, &img.path, action, &host).map_err(RequestError::Plan)?;
    log_notes(&plan);
    plan.cgroup = cgroup;
    let wants = image::AttachWants {
        kernel_mounts: plan.kernel_mounts(),
        // A SIF's `--writable` goes to its overlay partition ([`crate::overlay`]).
        writable: opts.writable && img.format != image::Format::Sif,
        unsquash: opts.unsquash,
    };
    let attach = image::choose(&img, wants).map_err(RequestError::Image)?;
    Ok(Prepared::Attached {
        plan,
        image: img,
        attach,
    })
}

/// The ISA check of `img` for `action`: a finding goes to `warn`, or under [`Policy::Error`]
/// refuses the launch.
fn judge(
    img: &image::Image,
    action: &Action,
    policy: Policy,
    warn: impl FnOnce(&Finding, &Path),
) -> Result<(), RequestError> {
    if let Some(finding) = isa_check::check(img, action, policy) {
        if policy == Policy::Error {
            return Err(RequestError::Isa(Box::new(Refused {
                image: img.path.clone(),
                finding,
            })));
        }
        warn(&finding, &img.path);
    }
    Ok(())
}

/// The plan of `request` run in a container that already exists (`instance://NAME`): no GPU
/// discovery, no image opened; `request.image` is the instance's image.
pub fn plan_in_container(
    request: Request,
    host_env: Vec<(String, String)>,
) -> Result<LaunchPlan, RequestError> {
    let opts = request.options(&host_env)?;
    let host = host::gather(host_env).map_err(RequestError::Host)?;
    plan::build(&opts, &request.image, request.action, &host).map_err(RequestError::Plan)
}

/// The plan's notes ([`crate::net::Note`]), logged once for the plan that runs.
fn log_notes(plan: &LaunchPlan) {
    for n in &plan.net.notes {
        match n {
            crate::net::Note::Info(m) => tracing::info!("{m}"),
            crate::net::Note::Warn(m) => tracing::warn!("{m}"),
        }
    }
}

/// The cgroup limits asked for ([`crate::cgroup`]); an instance being started gets a cgroup
/// even without limits when the host can give one, for `instance stats`, as in Apptainer.
fn cgroup_limits(request: &Request) -> Result<Option<crate::cgroup::Limits>, RequestError> {
    let limits = request.cgroup.resolve().map_err(RequestError::Cgroup)?;
    if matches!(request.action, Action::Start(_)) {
        let mut l = limits.unwrap_or_default();
        l.instance = true;
        return Ok(Some(l));
    }
    Ok(limits)
}

/// Look at the host for the GPUs asked for, warning about anything a working driver would
/// have had. Must run before any namespace change.
fn discover_gpus(
    req: &gpu::Request,
    host_env: &[(String, String)],
    dev: gpu::DevView,
) -> Result<Vec<gpu::Found>, RequestError> {
    if !req.any() {
        return Ok(Vec::new());
    }
    let found = gpu::discover(req, host_env, dev).map_err(RequestError::Gpu)?;
    for f in &found {
        for w in &f.warnings {
            tracing::warn!("{}: {w}", f.vendor.flag());
        }
    }
    Ok(found)
}

/// A running holder of this image on this node, joined, with the plan to run in it
/// ([`share`]); `None` when sharing is off, the image is a directory, or no holder runs.
fn join_holder(
    opts: &Options,
    image: &Path,
    action: &Action,
    host: &HostFacts,
) -> Result<Option<(LaunchPlan, share::Joined)>, RequestError> {
    if opts.share_idle.is_none() {
        return Ok(None);
    }
    let Ok(path) = std::fs::canonicalize(image) else {
        return Ok(None);
    };
    if path.is_dir() {
        return Ok(None);
    }
    let plan = plan::build(opts, &path, action.clone(), host).map_err(RequestError::Plan)?;
    if plan.share.is_none() {
        return Ok(None);
    }
    let user_ns = plan.ids == IdMap::Own;
    Ok(share::find(&path, plan.identity.uid, plan.identity.gid, user_ns).map(|j| (plan, j)))
}
