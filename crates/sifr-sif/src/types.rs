//! The numeric vocabularies of the format (data types, filesystem and partition types,
//! architectures, hash/format/message types, SBOM formats) as typed enums, with their on-disk
//! codes and the display strings `siftool` prints. Pure tables: no I/O here.

use std::fmt;

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident, unknown = $unknown_text:literal,
        { $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this crate does not know; kept so that it round-trips.
            Unknown(i32),
        }

        impl $name {
            /// Every known value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The on-disk code.
            pub fn code(self) -> i32 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown(c) => c,
                }
            }

            /// Decodes an on-disk code; unknown codes are kept in `Unknown`.
            pub fn from_code(code: i32) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    c => $name::Unknown(c),
                }
            }
        }

        impl fmt::Display for $name {
            /// The string `siftool` prints for this value.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(_) => $unknown_text,
                })
            }
        }
    };
}

// stays literal: the tables below are SIF's on-disk codes and the names `siftool` prints,
// byte for byte; they look alike only because each is a code -> variant -> text table.
code_enum! {
    /// What a data object holds (descriptor field `DataType`).
    DataType, unknown = "Unknown", {
        /// The definition file the image was built from.
        Deffile = 0x4001 => "Def.FILE",
        /// Environment variables.
        EnvVar = 0x4002 => "Env.Vars",
        /// JSON labels.
        Labels = 0x4003 => "JSON.Labels",
        /// A filesystem (the root filesystem, data or overlay).
        Partition = 0x4004 => "FS",
        /// A signature over a group or object.
        Signature = 0x4005 => "Signature",
        /// Generic JSON metadata (`inspect-metadata.json`, `oci-config.json`, ...).
        GenericJson = 0x4006 => "JSON.Generic",
        /// Generic raw data.
        Generic = 0x4007 => "Generic/Raw",
        /// A cryptographic message (e.g. the wrapped key of an encrypted partition).
        CryptoMessage = 0x4008 => "Cryptographic Message",
        /// A software bill of materials.
        Sbom = 0x4009 => "SBOM",
        /// An OCI root index.
        OciRootIndex = 0x400A => "OCI.RootIndex",
        /// An OCI blob.
        OciBlob = 0x400B => "OCI.Blob",
    }
}

impl DataType {
    /// `siftool add --datatype N` numbering (1 = Deffile ... 11 = OCI.Blob).
    pub fn from_siftool_number(n: i64) -> Option<Self> {
        if (1..=11).contains(&n) {
            Some(Self::from_code(0x4000 + n as i32))
        } else {
            None
        }
    }
}

code_enum! {
    /// Filesystem of a partition (partition extra, offset 0).
    FsType, unknown = "Unknown", {
        Squash = 1 => "Squashfs",
        Ext3 = 2 => "Ext3",
        ImmuObj = 3 => "Archive",
        Raw = 4 => "Raw",
        EncryptedSquashfs = 5 => "Encrypted squashfs",
        /// Apptainer fork only.
        GocryptfsSquashfs = 6 => "Gocryptfs squashfs",
    }
}

code_enum! {
    /// Role of a partition (partition extra, offset 4).
    PartType, unknown = "Unknown", {
        System = 1 => "System",
        /// The primary system partition: the container's root filesystem.
        PrimSys = 2 => "*System",
        Data = 3 => "Data",
        Overlay = 4 => "Overlay",
    }
}

code_enum! {
    /// Hash of a signature object (signature extra, offset 0).
    HashType, unknown = "Unknown", {
        Sha256 = 1 => "SHA-256",
        Sha384 = 2 => "SHA-384",
        Sha512 = 3 => "SHA-512",
        Blake2s256 = 4 => "BLAKE2s-256",
        Blake2b256 = 5 => "BLAKE2b-256",
    }
}

code_enum! {
    /// Envelope of a cryptographic message (extra, offset 0).
    FormatType, unknown = "Unknown", {
        OpenPgp = 1 => "OpenPGP",
        Pem = 2 => "PEM",
    }
}

code_enum! {
    /// Kind of a cryptographic message (extra, offset 4).
    MessageType, unknown = "Unknown", {
        ClearSignature = 0x100 => "Clear Signature",
        RsaOaep = 0x200 => "RSA-OAEP",
    }
}

code_enum! {
    /// Format of an SBOM object (extra, offset 0).
    SbomFormat, unknown = "unknown", {
        CycloneDxJson = 1 => "cyclonedx-json",
        CycloneDxXml = 2 => "cyclonedx-xml",
        GitHubJson = 3 => "github-json",
        SpdxJson = 4 => "spdx-json",
        SpdxRdf = 5 => "spdx-rdf",
        SpdxTagValue = 6 => "spdx-tag-value",
        SpdxYaml = 7 => "spdx-yaml",
        SyftJson = 8 => "syft-json",
    }
}

impl SbomFormat {
    /// Parses the names `siftool add --sbomformat` accepts (`github` is an alias).
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "github" {
            return Some(Self::GitHubJson);
        }
        Self::ALL.iter().copied().find(|f| f.to_string() == name)
    }
}

/// CPU architecture, as recorded in the header and in partition extras: two ASCII digits and a
/// NUL ([`Arch::sif_code`]). Names are Go `GOARCH` strings (`arm64`, not `aarch64`; `386`, not
/// `i386`). The type lives in `sifr-arch`, shared with the ISA facts, OCI platforms and the
/// runtime; SIF's numbering is kept there next to the names it numbers.
pub use sifr_arch::Arch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_type_strings() {
        assert_eq!(DataType::Partition.to_string(), "FS");
        assert_eq!(DataType::from_code(0x4010).to_string(), "Unknown");
        assert_eq!(DataType::from_siftool_number(11), Some(DataType::OciBlob));
        assert_eq!(
            SbomFormat::from_name("github"),
            Some(SbomFormat::GitHubJson)
        );
        assert_eq!(SbomFormat::Unknown(9).to_string(), "unknown");
    }
}
