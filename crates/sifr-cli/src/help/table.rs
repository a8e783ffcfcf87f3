//! The examples every command's `--help` ends with, keyed by command path (`"instance
//! start"`): `(command line, what it does)`, drawn from how researchers and admins use
//! Apptainer. Read by [`super::examples`]; the tests in `super` parse every line.

/// `(command path, [(command line, what it does)])`.
pub(super) const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    (
        "version",
        &[
            (
                "sifr version",
                "sifr's version and the Apptainer release it behaves as",
            ),
            (
                "apptainer version",
                "under the name `apptainer`: the release alone, for scripts",
            ),
        ],
    ),
    (
        "completion",
        &[
            (
                "sifr completion bash > ~/.local/share/bash-completion/completions/sifr",
                "install bash completion for yourself",
            ),
            (
                "sifr completion zsh > ~/.zfunc/_sifr",
                "the same for zsh (with ~/.zfunc in fpath)",
            ),
        ],
    ),
    (
        "man",
        &[
            (
                "sifr man --output ~/.local/share/man/man1",
                "install every page for yourself",
            ),
            (
                "sifr man | man -l -",
                "read the top page without installing it",
            ),
        ],
    ),
    (
        "deffile",
        &[
            (
                "sifr deffile check env.def",
                "check a definition file before a long build",
            ),
            (
                "sifr deffile check --json env.def",
                "print the parsed stages as JSON",
            ),
        ],
    ),
    (
        "deffile check",
        &[
            (
                "sifr deffile check env.def",
                "silent when the file is fine; exits 0",
            ),
            (
                "sifr deffile check --build-arg VERSION=3.12 env.def",
                "fill a `{{ VERSION }}` placeholder first",
            ),
            (
                "sifr deffile check --json a.def b.def",
                "every file's stages as a JSON array",
            ),
        ],
    ),
    (
        "sif",
        &[
            (
                "sifr sif list env.sif",
                "the objects of an image: partitions, labels, signatures",
            ),
            (
                "sifr sif dump 1 env.sif > env.def",
                "save an image's definition file",
            ),
        ],
    ),
    (
        "sif header",
        &[
            (
                "sifr sif header env.sif",
                "the global header: id, architecture, object counts",
            ),
            (
                "apptainer sif header env.sif",
                "the same under Apptainer's name",
            ),
        ],
    ),
    (
        "sif list",
        &[
            ("sifr sif list env.sif", "one line per object"),
            ("sifr siftool list env.sif", "the older command name"),
        ],
    ),
    (
        "sif info",
        &[
            (
                "sifr sif info 4 env.sif",
                "everything the descriptor of object 4 holds",
            ),
            (
                "sifr sif info 1 env.sif",
                "the definition file's descriptor",
            ),
        ],
    ),
    (
        "sif dump",
        &[
            (
                "sifr sif dump 1 env.sif",
                "print the definition file the image was built from",
            ),
            (
                "sifr sif dump 4 env.sif > rootfs.sqfs",
                "save the root file system partition",
            ),
        ],
    ),
    (
        "sif new",
        &[
            (
                "sifr sif new empty.sif",
                "an image with no objects, to add some to",
            ),
            (
                "sifr sif new /tmp/scratch.sif",
                "the same anywhere; an existing file is replaced",
            ),
        ],
    ),
    (
        "sif add",
        &[
            (
                "sifr sif add --datatype 4 --parttype 4 --partfs 2 env.sif overlay.img",
                "add an ext3 overlay partition",
            ),
            (
                "sifr sif add --datatype 7 env.sif notes.txt",
                "add a generic data object",
            ),
        ],
    ),
    (
        "sif del",
        &[
            ("sifr sif del 5 env.sif", "delete object 5"),
            ("sifr sif list env.sif", "find the id to delete first"),
        ],
    ),
    (
        "sif setprim",
        &[
            (
                "sifr sif setprim 4 env.sif",
                "make partition 4 the one that runs",
            ),
            ("sifr sif list env.sif", "find the partitions' ids first"),
        ],
    ),
    (
        "overlay",
        &[
            (
                "sifr overlay create --size 1024 overlay.img",
                "a 1 GiB writable overlay image for --overlay",
            ),
            (
                "sifr overlay create --size 1024 env.sif",
                "add a writable overlay partition to an image",
            ),
        ],
    ),
    (
        "overlay create",
        &[
            (
                "sifr overlay create --size 1024 overlay.img",
                "a 1 GiB ext3 overlay image, its blocks written out",
            ),
            (
                "sifr overlay create --size 4096 --sparse overlay.img",
                "the same, sparse: space is taken as files are written",
            ),
            (
                "sifr overlay create --fakeroot --create-dir /opt/tools overlay.img",
                "for actions run with --fakeroot, /opt/tools made ready",
            ),
            (
                "sifr overlay create --size 1024 env.sif",
                "add an overlay partition to an unsigned SIF",
            ),
        ],
    ),
    (
        "build",
        &[
            (
                "sifr build env.sif env.def",
                "build a SIF image from a definition file",
            ),
            (
                "sifr build --sandbox env/ env.def",
                "build a writable directory instead (as a user: with fakeroot)",
            ),
            (
                "sifr build ubuntu.sif docker://ubuntu:24.04",
                "convert a registry image",
            ),
            (
                "sifr build --no-cache-from post env.sif env.def",
                "rebuild, rerunning %post and what follows it",
            ),
        ],
    ),
    (
        "pull",
        &[
            (
                "sifr pull docker://python:3.12-slim",
                "write python_3.12-slim.sif here",
            ),
            (
                "sifr pull --dir ~/images lolcow.sif oras://ghcr.io/org/lolcow:1.0",
                "a SIF from an OCI registry",
            ),
            (
                "sifr pull --arch arm64 docker://alpine",
                "another architecture's image",
            ),
        ],
    ),
    (
        "push",
        &[
            (
                "sifr push env.sif oras://ghcr.io/org/env:1.0",
                "upload a SIF to a registry",
            ),
            (
                "sifr push --no-https env.sif oras://localhost:5000/env:dev",
                "to a plain-HTTP registry of your own",
            ),
        ],
    ),
    (
        "registry",
        &[
            (
                "sifr registry login --username me docker://ghcr.io",
                "store a login for pulls",
            ),
            ("sifr registry list", "the registries you are logged in to"),
        ],
    ),
    (
        "registry login",
        &[
            (
                "sifr registry login --username me --password-stdin docker://ghcr.io",
                "log in non-interactively (the token on stdin)",
            ),
            (
                "sifr registry login --username me oras://ghcr.io",
                "asks for the password",
            ),
        ],
    ),
    (
        "registry logout",
        &[
            (
                "sifr registry logout docker://ghcr.io",
                "forget the stored login",
            ),
            (
                "sifr registry logout oras://ghcr.io",
                "the same for an ORAS address",
            ),
        ],
    ),
    (
        "registry list",
        &[
            (
                "sifr registry list",
                "registries with stored logins, and their users",
            ),
            (
                "sifr registry list --authfile ./auth.json",
                "those of another credentials file",
            ),
        ],
    ),
    (
        "remote",
        &[
            (
                "sifr remote login --username me docker://ghcr.io",
                "the older spelling of registry login",
            ),
            (
                "sifr remote logout docker://ghcr.io",
                "the older spelling of registry logout",
            ),
        ],
    ),
    (
        "remote login",
        &[
            (
                "sifr remote login --username me docker://ghcr.io",
                "log in to a registry",
            ),
            (
                "sifr remote login --username me --password-stdin oras://ghcr.io",
                "the token on stdin",
            ),
        ],
    ),
    (
        "remote logout",
        &[
            ("sifr remote logout docker://ghcr.io", "forget a login"),
            (
                "sifr remote logout oras://ghcr.io",
                "the same for an ORAS address",
            ),
        ],
    ),
    (
        "cache",
        &[
            ("sifr cache list", "what the cache holds, by type"),
            (
                "sifr cache clean --days 30",
                "remove what was not used for 30 days",
            ),
        ],
    ),
    (
        "cache list",
        &[
            ("sifr cache list", "a summary per type"),
            (
                "sifr cache list --verbose --type blob",
                "every blob, with its size and date",
            ),
        ],
    ),
    (
        "cache clean",
        &[
            ("sifr cache clean --force", "empty the cache without asking"),
            ("sifr cache clean --type build", "drop the build cache only"),
            (
                "sifr cache clean --dry-run --days 7",
                "show what a clean of old entries would remove",
            ),
        ],
    ),
    (
        "inspect",
        &[
            ("sifr inspect env.sif", "the image's labels"),
            (
                "sifr inspect --deffile env.sif",
                "the definition file it was built from",
            ),
            (
                "sifr inspect --runscript --environment env.sif",
                "what `run` does, and its environment",
            ),
            (
                "sifr inspect --isa env.sif",
                "the CPU features its programs need",
            ),
        ],
    ),
    (
        "run-help",
        &[
            ("sifr run-help env.sif", "the image's %help text"),
            (
                "sifr run-help docker://alpine",
                "the same for a registry image",
            ),
        ],
    ),
    (
        "exec",
        &[
            (
                "sifr exec env.sif python3 train.py",
                "run a program of the image in your $PWD",
            ),
            (
                "sifr exec --nv env.sif nvidia-smi",
                "with the host's NVIDIA GPUs",
            ),
            (
                "sifr exec -B /scratch:/data env.sif ls /data",
                "bind a host directory",
            ),
            (
                "srun sifr exec mpi.sif ./ring",
                "one rank per Slurm task (the hybrid model)",
            ),
        ],
    ),
    (
        "run",
        &[
            ("sifr run env.sif", "run the image's runscript"),
            (
                "sifr run env.sif --epochs 10",
                "arguments after the image go to the runscript",
            ),
            (
                "sifr run docker://alpine",
                "a registry image, converted once and cached",
            ),
        ],
    ),
    (
        "shell",
        &[
            (
                "sifr shell env.sif",
                "an interactive shell in the container",
            ),
            (
                "sifr shell --writable-tmpfs env.sif",
                "with a root you may write to, for a while",
            ),
            (
                "sifr shell --cleanenv env.sif",
                "without the host's environment",
            ),
        ],
    ),
    (
        "test",
        &[
            ("sifr test env.sif", "run the image's %test section"),
            (
                "sifr test --nv env.sif",
                "the same with GPUs, as a job would run it",
            ),
        ],
    ),
    (
        "sign",
        &[
            (
                "sifr sign env.sif",
                "sign with your first PGP key (`key newpair` makes one)",
            ),
            (
                "sifr sign --keyidx 1 env.sif",
                "with another key of `key list --secret`",
            ),
            (
                "sifr sign --key cosign.key env.sif",
                "a DSSE signature with a PEM private key",
            ),
        ],
    ),
    (
        "verify",
        &[
            (
                "sifr verify env.sif",
                "check its signatures against your keyrings",
            ),
            (
                "sifr verify --key cosign.pub env.sif",
                "a DSSE signature against a PEM public key",
            ),
            (
                "sifr verify --json --all env.sif",
                "every object's verdict as JSON",
            ),
            (
                "sifr verify --legacy-insecure old.sif",
                "an image signed by Singularity 3.5 or older",
            ),
        ],
    ),
    (
        "key",
        &[
            (
                "sifr key newpair --name Me --email me@example.org --password secret",
                "a key pair for signing",
            ),
            ("sifr key list", "the public keys you trust"),
        ],
    ),
    (
        "key newpair",
        &[
            (
                "sifr key newpair --name Me --email me@example.org --comment ci --password secret",
                "without questions, as CI needs",
            ),
            ("sifr key newpair", "asks for each part"),
        ],
    ),
    (
        "key list",
        &[
            ("sifr key list", "your public keyring"),
            (
                "sifr key list --secret",
                "your private keys, numbered for `sign --keyidx`",
            ),
        ],
    ),
    (
        "key export",
        &[
            (
                "sifr key export --armor me.asc",
                "your public key, to publish",
            ),
            (
                "sifr key export --secret --armor me-secret.asc",
                "your private key, for another machine",
            ),
        ],
    ),
    (
        "key import",
        &[
            ("sifr key import staff.asc", "trust the site's key"),
            (
                "sifr key import --global staff.asc",
                "for every user (root; the global keyring)",
            ),
        ],
    ),
    (
        "key remove",
        &[
            (
                "sifr key remove 8883491F4268F173C6E5DC49EDECE4F3F38D871E",
                "stop trusting that key",
            ),
            ("sifr key list", "find the fingerprint first"),
        ],
    ),
    (
        "key search",
        &[
            (
                "sifr key search me@example.org",
                "find keys on the keyserver",
            ),
            (
                "sifr key search --url https://keys.openpgp.org Me",
                "on another keyserver",
            ),
        ],
    ),
    (
        "key pull",
        &[
            (
                "sifr key pull 8883491F4268F173C6E5DC49EDECE4F3F38D871E",
                "fetch a public key",
            ),
            (
                "sifr key pull --global 8883491F4268F173C6E5DC49EDECE4F3F38D871E",
                "for every user",
            ),
        ],
    ),
    (
        "key push",
        &[
            (
                "sifr key push 8883491F4268F173C6E5DC49EDECE4F3F38D871E",
                "publish your public key",
            ),
            (
                "sifr key push --url https://keys.openpgp.org 8883491F4268F173C6E5DC49EDECE4F3F38D871E",
                "to another keyserver",
            ),
        ],
    ),
    (
        "keyserver",
        &[
            (
                "sifr keyserver add https://keys.example.org",
                "use the site's keyserver",
            ),
            ("sifr keyserver list", "the keyservers, in order"),
        ],
    ),
    (
        "keyserver add",
        &[
            (
                "sifr keyserver add https://keys.example.org",
                "add a keyserver",
            ),
            (
                "sifr keyserver add --order 1 site https://keys.example.org",
                "first, under a name",
            ),
        ],
    ),
    (
        "keyserver list",
        &[
            ("sifr keyserver list", "the configured keyservers"),
            (
                "apptainer keyserver list",
                "the same under Apptainer's name",
            ),
        ],
    ),
    (
        "keyserver remove",
        &[
            (
                "sifr keyserver remove https://keys.example.org",
                "stop using it",
            ),
            (
                "sifr keyserver remove site https://keys.example.org",
                "the one added under a name",
            ),
        ],
    ),
    (
        "keyserver login",
        &[
            (
                "sifr keyserver login https://keys.example.org",
                "not needed: says why",
            ),
            (
                "apptainer keyserver login https://keys.example.org",
                "the same under Apptainer's name",
            ),
        ],
    ),
    (
        "keyserver logout",
        &[
            (
                "sifr keyserver logout https://keys.example.org",
                "not needed: says why",
            ),
            (
                "apptainer keyserver logout https://keys.example.org",
                "the same under Apptainer's name",
            ),
        ],
    ),
    (
        "instance",
        &[
            (
                "sifr instance start db.sif db1",
                "start the image's %startscript as `db1`",
            ),
            ("sifr instance list", "your running instances"),
            ("sifr instance stop db1", "stop it"),
        ],
    ),
    (
        "instance start",
        &[
            (
                "sifr instance start db.sif db1",
                "start `db1` in the background",
            ),
            (
                "sifr exec instance://db1 ps",
                "run a command in the running instance",
            ),
            (
                "sifr instance start -B /data db.sif db2 --port 5432",
                "arguments go to the start script",
            ),
        ],
    ),
    (
        "instance run",
        &[
            (
                "sifr instance run web.sif web1",
                "run the runscript in the background as `web1`",
            ),
            ("sifr instance list", "check that it runs"),
        ],
    ),
    (
        "instance stop",
        &[
            (
                "sifr instance stop db1",
                "SIGINT, then SIGKILL after the timeout",
            ),
            ("sifr instance stop --all", "every instance of yours"),
            (
                "sifr instance stop --signal TERM --timeout 30 db1",
                "another signal and timeout",
            ),
        ],
    ),
    (
        "instance list",
        &[
            ("sifr instance list", "name, PID and image of each instance"),
            ("sifr instance list --json", "the same as JSON"),
        ],
    ),
    (
        "instance stats",
        &[
            ("sifr instance stats db1", "CPU, memory and I/O of `db1`"),
            ("sifr instance stats --json db1", "the same as JSON"),
        ],
    ),
];
