//! Tests of [`super`]: precedence, parsing and the docs table.

mod tests {
    use super::super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_config() -> GlobalArgs {
        // Point at a file that cannot exist so the machine's default config never interferes.
        GlobalArgs {
            config: None,
            ..GlobalArgs::default()
        }
    }

    fn resolve(flags: &GlobalArgs, e: &BTreeMap<String, String>) -> Settings {
        Settings::resolve(flags, e).unwrap()
    }

    #[test]
    fn flag_beats_every_environment_variable() {
        let flags = GlobalArgs {
            debug: true,
            ..no_config()
        };
        let s = resolve(
            &flags,
            &env(&[("SIFR_DEBUG", "0"), ("APPTAINER_DEBUG", "0")]),
        );
        assert!(s.debug);
        assert_eq!(s.get("debug").unwrap().source, Source::Flag);
    }

    #[test]
    fn sifr_prefix_beats_apptainer_which_beats_singularity() {
        let e = env(&[
            ("SIFR_QUIET", "no"),
            ("APPTAINER_QUIET", "yes"),
            ("SINGULARITY_QUIET", "yes"),
        ]);
        let s = resolve(&no_config(), &e);
        assert!(!s.quiet);
        assert_eq!(
            s.get("quiet").unwrap().source,
            Source::Env("SIFR_QUIET".into())
        );

        let e = env(&[("APPTAINER_QUIET", "0"), ("SINGULARITY_QUIET", "1")]);
        assert!(!resolve(&no_config(), &e).quiet);

        let e = env(&[("SINGULARITY_QUIET", "1")]);
        assert!(resolve(&no_config(), &e).quiet);
    }

    #[test]
    fn apptainer_variable_beats_a_differing_singularity_one_with_a_warning() {
        let e = env(&[("APPTAINER_TMPDIR", "/a"), ("SINGULARITY_TMPDIR", "/b")]);
        let s = resolve(&no_config(), &e);
        assert_eq!(s.tmpdir.as_deref(), Some(Path::new("/a")));
        assert_eq!(
            s.warnings,
            vec!["`SINGULARITY_TMPDIR` and `APPTAINER_TMPDIR` differ: using `APPTAINER_TMPDIR`"]
        );
        // Equal values, or a SIFR_ variable above both, are no contradiction worth a word.
        let e = env(&[("APPTAINER_TMPDIR", "/a"), ("SINGULARITY_TMPDIR", "/a")]);
        assert!(resolve(&no_config(), &e).warnings.is_empty());
        let e = env(&[
            ("SIFR_TMPDIR", "/s"),
            ("APPTAINER_TMPDIR", "/a"),
            ("SINGULARITY_TMPDIR", "/b"),
        ]);
        assert!(resolve(&no_config(), &e).warnings.is_empty());
    }

    #[test]
    fn config_file_is_below_environment_and_above_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sifr.toml");
        std::fs::write(&path, "verbose = true\ntmpdir = \"/scratch/tmp\"\n").unwrap();
        let flags = GlobalArgs {
            config: Some(path.clone()),
            ..GlobalArgs::default()
        };
        let s = resolve(&flags, &env(&[]));
        assert!(s.verbose);
        assert_eq!(s.tmpdir.as_deref(), Some(Path::new("/scratch/tmp")));
        assert_eq!(s.get("verbose").unwrap().source, Source::ConfigFile(path));

        let s = resolve(&flags, &env(&[("APPTAINER_TMPDIR", "/fast")]));
        assert_eq!(s.tmpdir.as_deref(), Some(Path::new("/fast")));
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = resolve(&no_config(), &env(&[]));
        assert!(!s.debug && !s.verbose && !s.quiet && !s.silent);
        assert!(s.color);
        assert_eq!(s.tmpdir, None);
        assert_eq!(s.get("cachedir").unwrap().source, Source::Default);
    }

    #[test]
    fn bad_boolean_names_the_variable_and_value() {
        let err = Settings::resolve(&no_config(), &env(&[("APPTAINER_DEBUG", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`maybe`"), "{err}");
        assert!(err.contains("APPTAINER_DEBUG"), "{err}");
    }

    #[test]
    fn unknown_config_key_suggests_the_closest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sifr.toml");
        std::fs::write(&path, "tmpdri = \"/x\"\n").unwrap();
        let flags = GlobalArgs {
            config: Some(path),
            ..GlobalArgs::default()
        };
        let err = Settings::resolve(&flags, &env(&[])).unwrap_err();
        assert!(err.to_string().contains("`tmpdri`"));
        assert_eq!(err.hint().as_deref(), Some("did you mean `tmpdir`?"));
    }

    #[test]
    fn isa_check_defaults_to_warn_and_rejects_unknown_modes() {
        use crate::cmd::isa_check::IsaCheck;
        assert_eq!(resolve(&no_config(), &env(&[])).isa_check, IsaCheck::Warn);
        let s = resolve(&no_config(), &env(&[("APPTAINER_ISA_CHECK", "Error")]));
        assert_eq!(s.isa_check, IsaCheck::Error);
        let err = Settings::resolve(&no_config(), &env(&[("SIFR_ISA_CHECK", "loud")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`loud`") && err.contains("SIFR_ISA_CHECK"),
            "{err}"
        );
        assert!(err.contains("warn, error, off"), "{err}");
    }

    #[test]
    fn bind_list_comes_whole_from_the_strongest_variable() {
        let e = env(&[
            ("APPTAINER_BINDPATH", "/a,/b:/c:ro"),
            ("SINGULARITY_BIND", "/ignored"),
        ]);
        let s = resolve(&no_config(), &e);
        assert_eq!(s.bind, vec!["/a", "/b:/c:ro"]);
        assert_eq!(
            s.get("bind").unwrap().source,
            Source::Env("APPTAINER_BINDPATH".into())
        );
        let e = env(&[("APPTAINER_BINDPATH", "/x"), ("APPTAINER_BIND", "/y")]);
        assert_eq!(resolve(&no_config(), &e).bind, vec!["/y"]);
        assert!(resolve(&no_config(), &env(&[])).bind.is_empty());
    }

    #[test]
    fn tmpfs_size_defaults_to_apptainers_64_mib_and_rejects_non_numbers() {
        let s = resolve(&no_config(), &env(&[]));
        assert_eq!(s.tmpfs_size_mib, 64);
        let s = resolve(&no_config(), &env(&[("APPTAINER_TMPFS_SIZE", "256")]));
        assert_eq!(s.tmpfs_size_mib, 256);
        let e = Settings::resolve(&no_config(), &env(&[("SIFR_TMPFS_SIZE", "1g")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value `1g` for setting `tmpfs_size` (from environment variable `SIFR_TMPFS_SIZE`): expected a whole number above 0"
        );
    }

    #[test]
    fn gpu_settings_read_apptainer_variables_and_the_config_dir_follows_the_config_file() {
        let s = resolve(&no_config(), &env(&[("APPTAINER_NV", "1")]));
        assert!(s.nv && !s.rocm && !s.nvccli);
        assert_eq!(s.config_dir, Path::new("/etc/sifr"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.toml");
        std::fs::write(&path, "rocm = true\n").unwrap();
        let s = resolve(
            &no_config(),
            &env(&[("SIFR_CONFIG", path.to_str().unwrap())]),
        );
        assert!(s.rocm && !s.nv);
        assert_eq!(s.config_dir, dir.path());
    }

    #[test]
    fn no_color_environment_variable_turns_colour_off() {
        assert!(!resolve(&no_config(), &env(&[("NO_COLOR", "1")])).color);
    }

    #[test]
    fn every_setting_has_a_doc_line_and_is_resolved() {
        let s = resolve(&no_config(), &env(&[]));
        assert_eq!(s.resolved.len(), CATALOGUE.len());
        for d in CATALOGUE {
            assert!(!d.doc.is_empty(), "{} has no doc", d.key);
            assert!(d.key.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}

mod doc_tests {
    /// docs/settings.md must describe every setting, so the table never drifts from the code.
    #[test]
    fn settings_doc_lists_every_setting() {
        let doc = include_str!("../../../docs/settings.md");
        for d in super::super::CATALOGUE {
            let row = format!("| `{}` |", d.key);
            assert!(
                doc.contains(&row),
                "docs/settings.md has no row for `{}`",
                d.key
            );
            let env = format!("`SIFR_{}`", d.key.to_ascii_uppercase());
            assert!(doc.contains(&env), "docs/settings.md does not name {env}");
        }
    }
}
