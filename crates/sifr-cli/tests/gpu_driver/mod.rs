//! The fake GPU driver of `exec_gpu.rs`: real ELF shared objects with the driver's sonames,
//! stub programs, vendor files, device nodes and a loader cache, installed by a setup script in
//! a private mount namespace, and the runner that starts sifr inside that namespace.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use sifr_testkit::{As, Fixture, TestCommand};

/// The fake driver's version, as the NVIDIA installer names its files.
pub const VERSION: &str = "535.104.05";

/// 64-bit libraries: (file name, soname, soname link in the top directory?). Real files go in
/// `nvidia/current` (the Debian layout) when they have a soname link, else in the top directory.
pub const LIBS64: &[(&str, &str)] = &[
    ("libcuda", "libcuda.so.1"),
    ("libnvidia-ml", "libnvidia-ml.so.1"),
    ("libnvidia-ptxjitcompiler", "libnvidia-ptxjitcompiler.so.1"),
    ("libEGL_nvidia", "libEGL_nvidia.so.0"),
];
pub const LIBS32: &[(&str, &str)] = &[
    ("libcuda", "libcuda.so.1"),
    ("libnvidia-ml", "libnvidia-ml.so.1"),
];
pub const PROGRAMS: &[&str] = &[
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
];
pub const ICD: &str = "/usr/share/vulkan/icd.d/nvidia_icd.json";
pub const EGL_VENDOR: &str = "/usr/share/glvnd/egl_vendor.d/10_nvidia.json";

/// The site list used where the exact set of bound files is checked: only names the fake
/// driver provides, so the host's own libraries (mesa's libGL, ...) cannot change the answer.
pub const SITE_LIST: &str = "\
# a site's list
nvidia-smi
nvidia-debugdump
nvidia-persistenced
nvidia-cuda-mps-control
nvidia-cuda-mps-server
libcuda.so
libnvidia-ml.so
libnvidia-ptxjitcompiler.so
libEGL_nvidia.so
libnvidia-glcore.so
/usr/share/glvnd/egl_vendor.d/10_nvidia.json
/usr/share/vulkan/icd.d/nvidia_icd.json
/usr/share/nvidia/nvoptix.bin
";

pub fn triplet() -> String {
    format!("{}-linux-gnu", std::env::consts::ARCH)
}

pub fn cc(args: &[&str]) -> Result<(), String> {
    let o = Command::new("gcc")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// The fake driver's files, built once per test in a temporary directory, and the script that
/// installs them in a private mount namespace.
pub struct FakeDriver {
    pub dir: tempfile::TempDir,
    /// Whether 32-bit libraries could be built.
    pub has32: bool,
    /// Keeps the persistenced socket listening.
    _socket: std::os::unix::net::UnixListener,
}

impl FakeDriver {
    pub fn new() -> FakeDriver {
        let dir = tempfile::Builder::new()
            .prefix("sifr-gpu-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["lib64", "lib32", "bin", "etc", "ns", "out"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        // The stub tool records its arguments here, whoever runs it.
        std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let src = |name: &str, bits: u32| {
            let p = d.join(format!("{name}-{bits}.c"));
            std::fs::write(
                &p,
                format!(
                    "const char sifr_fake_driver[] = \"fake-driver {name} {bits}\";\nint {}_probe(void) {{ return {bits}; }}\n",
                    name.replace('-', "_")
                ),
            )
            .unwrap();
            p
        };
        let built = |name: &str, soname: &str| {
            let out = d.join("lib64").join(format!("{name}.so.{VERSION}"));
            cc(&[
                "-shared",
                "-fPIC",
                &format!("-Wl,-soname,{soname}"),
                "-o",
                out.to_str().unwrap(),
                src(name, 64).to_str().unwrap(),
            ])
            .expect("gcc builds the fake driver's libraries (apt-get install gcc)");
        };
        for (name, soname) in LIBS64 {
            built(name, soname);
        }
        // Only the versioned name, as the driver ships its internal libraries; and the CUDA
        // runtime, which belongs to the image and must never be taken from the host.
        built(
            "libnvidia-glcore",
            &format!("libnvidia-glcore.so.{VERSION}"),
        );
        built("libcudart", "libcudart.so.12");
        // 32-bit: no 32-bit libc is needed, only the compiler's -m32; a stub libc.so.6 gives
        // them the DT_NEEDED that makes ldconfig file them as `libc6`, as real ones are.
        let libc32 = d.join("lib32/libc.so.6");
        let mut has32 = cc(&[
            "-m32",
            "-shared",
            "-nostdlib",
            "-Wl,-soname,libc.so.6",
            "-o",
            libc32.to_str().unwrap(),
            src("libc", 32).to_str().unwrap(),
        ]);
        if has32.is_ok() {
            for (name, soname) in LIBS32 {
                let out = d.join("lib32").join(format!("{name}.so.{VERSION}"));
                has32 = has32.and_then(|()| {
                    cc(&[
                        "-m32",
                        "-shared",
                        "-nostdlib",
                        "-Wl,--no-as-needed",
                        &format!("-Wl,-soname,{soname}"),
                        "-o",
                        out.to_str().unwrap(),
                        src(name, 32).to_str().unwrap(),
                        libc32.to_str().unwrap(),
                    ])
                });
            }
        }
        std::fs::remove_file(&libc32).ok();
        if let Err(why) = &has32 {
            let why = format!(
                "the 32-bit checks: `gcc -m32` cannot build a shared object here: {}",
                why.lines().next().unwrap_or_default()
            );
            // Debian's gcc on x86-64 builds these (no libc is linked); elsewhere `-m32` is not
            // an option of the host's compiler, and 32-bit driver libraries are x86's.
            if cfg!(target_arch = "x86_64") {
                sifr_testkit::skip(why);
            } else {
                sifr_testkit::not_here(why);
            }
        }
        for p in PROGRAMS.iter().chain(&["rocm-smi", "nvidia-container-cli"]) {
            let body = if *p == "nvidia-container-cli" {
                // Records how it was called, then lists the driver's files as the real tool
                // prints them (one absolute path a line).
                format!(
                    "#!/bin/sh\necho \"$@\" > {args}\ncat <<EOF\n/usr/bin/nvidia-smi\n/usr/lib/{t}/nvidia/current/libcuda.so.{VERSION}\n/run/nvidia-persistenced/socket\n/lib/firmware/nvidia/{VERSION}/gsp_ga10x.bin\nEOF\n",
                    args = d.join("out/nvccli-args").display(),
                    t = triplet()
                )
            } else {
                format!("#!/bin/sh\necho fake {p}\n")
            };
            let path = d.join("bin").join(p);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(d.join("etc/sifr.toml"), "").unwrap();
        std::fs::write(d.join("etc/nvliblist.conf"), SITE_LIST).unwrap();
        let socket = std::os::unix::net::UnixListener::bind(d.join("socket")).unwrap();
        FakeDriver {
            dir,
            has32: has32.is_ok(),
            _socket: socket,
        }
    }

    /// The shell script that installs the driver in the current (private) mount namespace and
    /// then runs its arguments. `nvccli` adds `nvidia-container-cli`; `driver` false installs
    /// nothing (the no-driver host).
    /// The site config (`SIFR_CONFIG`) whose directory holds the fake driver's library list.
    pub fn site_config(&self) -> std::path::PathBuf {
        self.dir.path().join("etc/sifr.toml")
    }

    pub fn setup_script(&self, driver: bool, nvccli: bool) -> String {
        let f = self.dir.path().display().to_string();
        let t = triplet();
        let mut s = format!(
            "set -e\nF={f}\nS=$F/ns\nmount -t tmpfs tmpfs $S\n\
             mkdir $S/up $S/work $S/runup $S/runwork $S/realdev\n\
             mount -t overlay overlay -o lowerdir=/usr,upperdir=$S/up,workdir=$S/work /usr\n\
             mount -t overlay overlay -o lowerdir=/run,upperdir=$S/runup,workdir=$S/runwork /run\n\
             mount --rbind /dev $S/realdev\nmount -t tmpfs -o mode=755 tmpfs /dev\n\
             for e in $S/realdev/*; do n=${{e##*/}}\n\
               if [ -L \"$e\" ]; then cp -P \"$e\" /dev/\n\
               elif [ -d \"$e\" ]; then mkdir /dev/$n; mount --rbind \"$e\" /dev/$n\n\
               else : > /dev/$n; mount --bind \"$e\" /dev/$n; fi\n\
             done\n"
        );
        if driver {
            s += &format!(
                "L=/usr/lib/{t}\nmkdir -p $L/nvidia/current /usr/lib/i386-linux-gnu /usr/share/vulkan/icd.d /usr/share/glvnd/egl_vendor.d\n"
            );
            for (name, soname) in LIBS64 {
                s += &format!(
                    "cp $F/lib64/{name}.so.{VERSION} $L/nvidia/current/\nln -s nvidia/current/{name}.so.{VERSION} $L/{soname}\n"
                );
            }
            s += &format!(
                "ln -s libcuda.so.1 $L/libcuda.so\ncp $F/lib64/libnvidia-glcore.so.{VERSION} $F/lib64/libcudart.so.{VERSION} $L/\nln -s libcudart.so.{VERSION} $L/libcudart.so.12\n"
            );
            if self.has32 {
                for (name, soname) in LIBS32 {
                    s += &format!(
                        "cp $F/lib32/{name}.so.{VERSION} /usr/lib/i386-linux-gnu/\nln -s {name}.so.{VERSION} /usr/lib/i386-linux-gnu/{soname}\n"
                    );
                }
            }
            for p in PROGRAMS.iter().chain(&["rocm-smi"]) {
                s += &format!("cp $F/bin/{p} /usr/bin/\n");
            }
            if nvccli {
                s += "cp $F/bin/nvidia-container-cli /usr/bin/\n";
            }
            s += &format!(
                "echo '{{\"file_format_version\": \"1.0.0\", \"ICD\": {{\"library_path\": \"libGLX_nvidia.so.0\"}}}}' > {ICD}\n\
                 echo '{{\"file_format_version\": \"1.0.0\", \"ICD\": {{\"library_path\": \"libEGL_nvidia.so.0\"}}}}' > {EGL_VENDOR}\n\
                 printf 'include /etc/ld.so.conf.d/*.conf\\n/usr/lib/i386-linux-gnu\\n' > $S/ld.so.conf\n\
                 ldconfig -X -C $S/ld.so.cache -f $S/ld.so.conf\nmount --bind $S/ld.so.cache /etc/ld.so.cache\n\
                 mknod -m 666 /dev/nvidia0 c 195 0\nmknod -m 666 /dev/nvidia1 c 195 1\n\
                 mknod -m 666 /dev/nvidiactl c 195 255\nmknod -m 666 /dev/nvidia-modeset c 195 254\n\
                 mknod -m 666 /dev/nvidia-uvm c 509 0\nmknod -m 666 /dev/nvidia-uvm-tools c 509 1\n\
                 mkdir /dev/nvidia-caps\nmknod -m 444 /dev/nvidia-caps/nvidia-cap1 c 508 1\n\
                 mknod -m 666 /dev/kfd c 507 0\nmkdir /dev/dri\nmknod -m 666 /dev/dri/card0 c 226 0\n\
                 mknod -m 666 /dev/dri/renderD128 c 226 128\n\
                 mkdir -p /run/nvidia-persistenced\n: > /run/nvidia-persistenced/socket\n\
                 mount --bind $F/socket /run/nvidia-persistenced/socket\n"
            );
        }
        s += "exec \"$@\"\n";
        s
    }
}

/// An image with its own library configuration, to see its directories put first.
pub fn image() -> Fixture {
    let fx = Fixture::new();
    let t = triplet();
    for d in ["opt/imglib", &format!("usr/lib/{t}")] {
        std::fs::create_dir_all(fx.image.join(d)).unwrap();
    }
    std::fs::write(fx.image.join("etc/ld.so.conf"), "/opt/imglib\n").unwrap();
    fx
}

impl FakeDriver {
    /// `sifr` (arguments still to add) as `who`, in the fixture's work directory, inside a
    /// private mount namespace where the fake driver is installed; the caller's own settings
    /// and `*_VISIBLE_DEVICES` are not passed on.
    pub fn sifr(&self, fx: &Fixture, who: As) -> TestCommand {
        self.sifr_on(fx, who, true, false)
    }

    /// [`FakeDriver::sifr`] on a host with no driver installed.
    pub fn sifr_without_driver(&self, fx: &Fixture, who: As) -> TestCommand {
        self.sifr_on(fx, who, false, false)
    }

    /// [`FakeDriver::sifr`] on a host that also has the fake `nvidia-container-cli`.
    pub fn sifr_with_nvccli(&self, fx: &Fixture, who: As) -> TestCommand {
        self.sifr_on(fx, who, true, true)
    }

    fn sifr_on(&self, fx: &Fixture, who: As, driver: bool, nvccli: bool) -> TestCommand {
        let script = self.setup_script(driver, nvccli);
        TestCommand::new(env!("CARGO_BIN_EXE_sifr"))
            .launcher([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "sh",
            ])
            .as_user(who)
            .current_dir(&fx.work)
            .without_caller_settings()
            .without_caller_env_ending_with("_VISIBLE_DEVICES")
    }
}

/// Root and the test user; `None` (after [`sifr_testkit::skip`]) when not running as root.
pub fn identities() -> Option<Vec<As>> {
    if !sifr_testkit::is_root() {
        sifr_testkit::skip("installing a fake driver needs root (mounts, mknod)");
        return None;
    }
    Some(sifr_testkit::runnable_identities())
}

pub fn line_of<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(key))
}
