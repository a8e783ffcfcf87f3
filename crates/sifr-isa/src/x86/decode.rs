//! Decoding one span of code into [`Region`]s: the features, branch targets, taken
//! addresses and data references of each function, with iced-x86. Knows nothing of the
//! reachability rules (see the parent module); never allocates per instruction beyond the
//! region's own lists.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::feature::{self, Feature, FeatureSet};

#[derive(Debug, Default)]
pub(super) struct Region {
    pub start: u64,
    pub end: u64,
    pub features: FeatureSet,
    pub first_sites: Vec<(Feature, u64)>,
    /// Direct branch / call targets outside the region.
    pub branches: Vec<u64>,
    /// Code addresses taken (RIP-relative lea, immediates).
    pub code_refs: Vec<u64>,
    /// Writable data addresses this region reads or writes.
    pub data_refs: Vec<u64>,
    /// Falls through into the region starting at `end`.
    pub falls_through: bool,
    pub cpuid: bool,
    pub instructions: u32,
}

pub(super) struct DecodeCtx<'a, C, W> {
    pub bitness: u32,
    pub fixed_address: bool,
    pub in_code: &'a C,
    pub in_writable: &'a W,
}

/// Decodes `[start, end)` into one or more regions appended to `out`; returns the number of
/// instructions.
///
/// When `split` is set (code without unwind info), a new region starts after an
/// unconditional `ret`/`jmp` followed by alignment padding and a 16-byte aligned address:
/// hand-written assembly (OpenSSL's perlasm) often has no FDEs, and without this a feature
/// query such as `ossl_rsaz_avx512ifma_eligible` would merge with the AVX-512 function after
/// it. Code with FDEs is never split this way: a split inside a function (an aligned loop
/// head after a `jmp`) would detach code from the feature check that guards it.
pub(super) fn decode_span<C: Fn(u64) -> bool, W: Fn(u64) -> bool>(
    start: u64,
    end: u64,
    bytes: &[u8],
    split: bool,
    ctx: &DecodeCtx<'_, C, W>,
    out: &mut Vec<Region>,
) -> u64 {
    let mut decoder = Decoder::with_ip(ctx.bitness, bytes, start, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut count = 0u64;
    let mut r = Region {
        start,
        end,
        ..Region::default()
    };
    let mut last_flow = FlowControl::Next;
    // True while the instructions since the last real one are NOPs or `int3`; starts true
    // so that a region of nothing but padding does not fall through.
    let mut padding = true;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        count += 1;
        r.instructions = r.instructions.saturating_add(1);
        let mnemonic = ins.mnemonic();
        let is_padding = mnemonic == Mnemonic::Nop || mnemonic == Mnemonic::Int3;
        if split
            && padding
            && !is_padding
            && ins.ip() % 16 == 0
            && matches!(
                last_flow,
                FlowControl::Return
                    | FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
            )
        {
            let mut next = Region {
                start: ins.ip(),
                end,
                instructions: 1,
                ..Region::default()
            };
            r.end = ins.ip();
            r.instructions -= 1;
            std::mem::swap(&mut r, &mut next);
            out.push(next);
        }
        if ins.is_invalid() {
            // Data inside `.text` (OpenSSL's constant tables); it ends any padding run.
            last_flow = FlowControl::Exception;
            padding = false;
            continue;
        }
        // Alignment padding after a `ret`/`jmp` must not turn into a fall-through edge.
        if is_padding && mnemonic == Mnemonic::Nop {
            padding = true;
        } else if !is_padding {
            padding = false;
            last_flow = ins.flow_control();
        } else {
            padding = true;
            last_flow = FlowControl::Interrupt;
        }
        if mnemonic == Mnemonic::Cpuid {
            r.cpuid = true;
        }
        // `tzcnt` is `rep bsf`: it runs as `bsf` on CPUs without BMI1, and the prefetch hints
        // are no-ops where unsupported (see crate::feature).
        if !matches!(
            mnemonic,
            Mnemonic::Tzcnt | Mnemonic::Prefetch | Mnemonic::Prefetchw | Mnemonic::Prefetchwt1
        ) {
            for f in ins.cpuid_features() {
                if let Some(f) = feature::from_iced(*f)
                    && !r.features.contains(f)
                {
                    r.features.insert(f);
                    r.first_sites.push((f, ins.ip()));
                }
            }
        }
        match ins.flow_control() {
            FlowControl::Call
            | FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch
                if matches!(
                    ins.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                ) =>
            {
                // Backward jumps inside the current region are loops; everything else may
                // leave it (the region's end is not known yet), self-edges are dropped later.
                let t = ins.near_branch_target();
                if (t < r.start || t > ins.ip()) && (ctx.in_code)(t) {
                    r.branches.push(t);
                }
            }
            _ => {}
        }
        if ins.is_ip_rel_memory_operand() {
            let a = ins.ip_rel_memory_address();
            if (ctx.in_code)(a) {
                // Only `lea` takes a function's address; a load from `.text` reads a constant
                // table placed there (Intel SVML does this).
                if mnemonic == Mnemonic::Lea {
                    r.code_refs.push(a);
                }
            } else if (ctx.in_writable)(a) {
                r.data_refs.push(a);
            }
        } else if ins.memory_base() == Register::None
            && ins.memory_index() == Register::None
            && (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
        {
            // Absolute addressing (non-PIC code): `mov eax, [__cpu_model+12]`.
            let a = ins.memory_displacement64();
            if (ctx.in_writable)(a) {
                r.data_refs.push(a);
            }
        }
        // Position-independent code cannot hold an absolute address in an immediate; there
        // an immediate that happens to fall in `.text` is just a number.
        for i in (0..ins.op_count()).filter(|_| ctx.fixed_address) {
            if matches!(
                ins.op_kind(i),
                OpKind::Immediate32 | OpKind::Immediate32to64
            ) {
                let a = ins.immediate(i);
                if (ctx.in_code)(a) {
                    r.code_refs.push(a);
                }
            }
        }
    }
    // A region that ends in padding (or is only padding) does not run into the next one:
    // compilers pad only between functions or before loop heads they jump to.
    r.falls_through = !padding
        && !matches!(
            last_flow,
            FlowControl::Return
                | FlowControl::UnconditionalBranch
                | FlowControl::IndirectBranch
                | FlowControl::Exception
                | FlowControl::Interrupt
        );
    out.push(r);
    count
}
