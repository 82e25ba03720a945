//! Where to put uprobes in a Go function: its entry and every RET, as file offsets of the
//! binary. Uprobes at RET instructions stand in for uretprobes, which crash Go programs (the
//! runtime walks and copies goroutine stacks and finds the kernel's trampoline address there).
//!
//! The function is found in `.symtab`, or in `.gopclntab` when the binary was stripped: the
//! runtime needs that table for tracebacks, so `-ldflags="-s -w"` and strip(1) keep it.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, SectionKind};

use super::ProbeError;

/// Whether `ins` is the stack check that opens every Go function with a frame:
/// `cmp rsp, [r14+0x10]` (g.stackguard0), or `cmp r12, [r14+0x10]` after `lea r12, [rsp-N]`
/// in functions with big frames.
fn is_stack_check(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Cmp
        && matches!(ins.op0_register(), Register::RSP | Register::R12)
        && ins.op1_kind() == OpKind::Memory
        && ins.memory_base() == Register::R14
        && ins.memory_displacement64() == 0x10
}

/// Where a function's location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Symtab,
    Pclntab,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Symtab => ".symtab",
            Table::Pclntab => ".gopclntab",
        }
    }
}

/// A function located in a binary, with the places to probe (virtual addresses).
#[derive(Debug, Clone)]
pub struct GoFunc {
    pub address: u64,
    /// From `.gopclntab` this runs to the next function, so it includes INT3 padding.
    pub size: u64,
    pub table: Table,
    /// The conditional jump after the stack check, which uprobes emulate instead of
    /// single-stepping (much cheaper); the entry itself when the prologue is different.
    pub probe_at: u64,
    pub rets: Vec<u64>,
    /// Address and file offset of the section holding the code.
    section: (u64, u64),
}

impl GoFunc {
    /// The file offset of `vaddr`, which is what uprobes attach to.
    pub fn file_offset(&self, vaddr: u64) -> u64 {
        vaddr - self.section.0 + self.section.1
    }

    /// Where the entry uprobe goes, as a file offset.
    pub fn entry_offset(&self) -> u64 {
        self.file_offset(self.probe_at)
    }

    /// Where the uprobes that see the function return go: each RET, as file offsets.
    pub fn ret_offsets(&self) -> Vec<u64> {
        self.rets.iter().map(|r| self.file_offset(*r)).collect()
    }
}

/// Locates `name` in the ELF `data` (`label` names the binary in errors).
pub fn locate(data: &[u8], label: &str, name: &str) -> Result<GoFunc, ProbeError> {
    let elf = object::File::parse(data)
        .map_err(|e| ProbeError::Binary(format!("{label}: not an ELF binary ({e})")))?;
    let has_symtab = elf
        .symbol_table()
        .is_some_and(|t| t.symbols().next().is_some());
    let (address, size, table) = match from_symtab(&elf, name) {
        Some((a, s)) => (a, s, Table::Symtab),
        None => match from_pclntab(&elf, name) {
            Ok((a, s)) => (a, s, Table::Pclntab),
            Err(why) if has_symtab => {
                return Err(ProbeError::Binary(format!(
                    "{label}: no function {name} in its symbol table or .gopclntab ({why}); \
                     is it a Go program that uses the network?"
                )));
            }
            Err(why) => {
                return Err(ProbeError::Binary(format!(
                    "{label} was built without symbols (go build -ldflags=\"-s -w\", or stripped) \
                     and its .gopclntab cannot be read either ({why}), so {name} cannot be \
                     found. Rebuild it with Go 1.18 or newer without -ldflags=\"-s -w\" and \
                     restart it."
                )));
            }
        },
    };
    let (code, section) = code_at(&elf, address, size).ok_or_else(|| {
        ProbeError::Binary(format!(
            "{label}: {name} at {address:#x} lies in no code section"
        ))
    })?;
    let (probe_at, rets) = probe_points(code, address)
        .map_err(|why| ProbeError::Binary(format!("{label}: cannot probe {name}: {why}")))?;
    Ok(GoFunc {
        address,
        size,
        table,
        probe_at,
        rets,
        section,
    })
}

fn from_symtab(elf: &object::File, name: &str) -> Option<(u64, u64)> {
    elf.symbols()
        .find(|s| s.name() == Ok(name) && s.size() > 0)
        .map(|s| (s.address(), s.size()))
}

/// The bytes of `[address, address + size)` and the (address, file offset) of its section.
fn code_at<'d>(elf: &object::File<'d>, address: u64, size: u64) -> Option<(&'d [u8], (u64, u64))> {
    let sec = elf.sections().find(|s| {
        s.kind() == SectionKind::Text && s.address() <= address && address < s.address() + s.size()
    })?;
    let (offset, _) = sec.file_range()?;
    let data = sec.data().ok()?;
    let start = usize::try_from(address - sec.address()).ok()?;
    let len = usize::try_from(size).ok()?;
    let code = data.get(start..start.checked_add(len)?.min(data.len()))?;
    Some((code, (sec.address(), offset)))
}

/// The entry probe point and every RET. Refuses functions that leave other than by RET
/// (indirect jumps, tail calls), because a wait could then end unseen.
fn probe_points(code: &[u8], address: u64) -> Result<(u64, Vec<u64>), String> {
    let end = address + code.len() as u64;
    let mut rets = Vec::new();
    for ins in Decoder::with_ip(64, code, address, DecoderOptions::NONE) {
        if ins.is_invalid() {
            return Err(format!("undecodable instruction at {:#x}", ins.ip()));
        }
        match ins.flow_control() {
            FlowControl::Return => rets.push(ins.ip()),
            FlowControl::IndirectBranch => {
                return Err(format!("indirect jump at {:#x}", ins.ip()));
            }
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                let target = ins.near_branch_target();
                if !(address..end).contains(&target) {
                    return Err(format!(
                        "jump out of the function at {:#x} (to {target:#x})",
                        ins.ip()
                    ));
                }
            }
            _ => {}
        }
    }
    if rets.is_empty() {
        return Err("no RET instruction".into());
    }
    Ok((check_jump(code, address).unwrap_or(address), rets))
}

/// The conditional jump after the stack check, when the function opens with one. Only R12
/// changes before it, so the argument registers and g (R14) are as at the entry.
fn check_jump(code: &[u8], address: u64) -> Option<u64> {
    let head: Vec<Instruction> = Decoder::with_ip(64, code, address, DecoderOptions::NONE)
        .into_iter()
        .take(3)
        .collect();
    let lea_r12 = |i: &Instruction| {
        i.mnemonic() == Mnemonic::Lea
            && i.op0_register() == Register::R12
            && i.memory_base() == Register::RSP
    };
    let skip = usize::from(head.first().is_some_and(lea_r12));
    let (cmp, jcc) = (head.get(skip)?, head.get(skip + 1)?);
    (is_stack_check(cmp) && jcc.flow_control() == FlowControl::ConditionalBranch).then(|| jcc.ip())
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Offsets in `runtime.moduledata` (Go 1.18 to 1.27): pcHeader at 0, funcnametab's pointer
/// at 8, minpc at 160, text at 176.
const MD_FUNCNAMETAB: usize = 8;
const MD_MINPC: usize = 160;
const MD_TEXT: usize = 176;

/// Looks `name` up in `.gopclntab` (the Go 1.18+ layout, magic 0xfffffff0 or 0xfffffff1).
/// Size runs to the next function's entry.
fn from_pclntab(elf: &object::File, name: &str) -> Result<(u64, u64), String> {
    let sec = elf
        .section_by_name(".gopclntab")
        .ok_or("no .gopclntab section")?;
    let tab = sec.data().map_err(|e| format!(".gopclntab: {e}"))?;
    let bad = || "truncated .gopclntab".to_string();
    let magic = u32_at(tab, 0).ok_or_else(bad)?;
    if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
        return Err(format!(
            ".gopclntab magic {magic:#x} is not the Go 1.18+ layout"
        ));
    }
    if tab.get(7) != Some(&8) {
        return Err(".gopclntab is not for a 64-bit target".into());
    }
    let word = |i: usize| u64_at(tab, 8 + 8 * i).ok_or_else(bad);
    let nfunc = usize::try_from(word(0)?).map_err(|_| bad())?;
    let text_start = word(2)?;
    let funcnames = usize::try_from(word(3)?).map_err(|_| bad())?;
    let pcln = usize::try_from(word(7)?).map_err(|_| bad())?;
    let entry = |i: usize| -> Result<(u32, u32), String> {
        let at = pcln + 8 * i;
        Ok((
            u32_at(tab, at).ok_or_else(bad)?,
            u32_at(tab, at + 4).ok_or_else(bad)?,
        ))
    };
    for i in 0..nfunc {
        let (entry_off, func_off) = entry(i)?;
        let name_off = u32_at(tab, pcln + func_off as usize + 4).ok_or_else(bad)?;
        let start = funcnames + name_off as usize;
        let found = tab
            .get(start..)
            .and_then(|s| s.split(|b| *b == 0).next())
            .ok_or_else(bad)?;
        if found != name.as_bytes() {
            continue;
        }
        let (next, _) = entry(i + 1)?;
        let (first, _) = entry(0)?;
        let text = text_base(elf, sec.address(), funcnames as u64, first)
            .or((text_start != 0).then_some(text_start))
            .ok_or("found no runtime.firstmoduledata to place .text")?;
        return Ok((
            text + u64::from(entry_off),
            u64::from(next.saturating_sub(entry_off)),
        ));
    }
    Err(format!("no function {name} in .gopclntab"))
}

/// `runtime.firstmoduledata.text`, which pclntab entries are relative to. Go 1.27 no longer
/// keeps it in the pcHeader, and with external linking it is not the start of `.text`. The
/// moduledata is the data word pair (pclntab address, its funcnametab address), in whichever
/// data section the linker put it.
fn text_base(elf: &object::File, pclntab: u64, funcnames: u64, first_entry: u32) -> Option<u64> {
    for sec in elf.sections() {
        if !matches!(
            sec.kind(),
            SectionKind::Data | SectionKind::ReadOnlyData | SectionKind::ReadOnlyDataWithRel
        ) || sec.address() == pclntab
        {
            continue;
        }
        let Ok(data) = sec.data() else { continue };
        for off in (0..data.len().saturating_sub(MD_TEXT + 8)).step_by(8) {
            if u64_at(data, off) != Some(pclntab)
                || u64_at(data, off + MD_FUNCNAMETAB) != Some(pclntab + funcnames)
            {
                continue;
            }
            let text = u64_at(data, off + MD_TEXT)?;
            if u64_at(data, off + MD_MINPC) == Some(text + u64::from(first_entry)) {
                return Some(text);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobuild::{self, Toolchain};

    const POLL_WAIT: &str = "internal/poll.runtime_pollWait";
    const FD_WRITE: &str = "internal/poll.(*FD).Write";

    /// A copy of `bin` without symbols, as `strip` makes it.
    fn stripped(bin: &std::path::Path, dir: &std::path::Path) -> Vec<u8> {
        let out = dir.join("stripped");
        let status = std::process::Command::new("strip")
            .arg("-o")
            .arg(&out)
            .arg(bin)
            .status()
            .expect("strip(1) from binutils");
        assert!(status.success(), "strip {}", bin.display());
        std::fs::read(out).unwrap()
    }

    #[test]
    fn symtab_and_pclntab_agree_for_every_toolchain() {
        let toolchains = Toolchain::all();
        assert!(
            !toolchains.is_empty(),
            "no Go toolchain: apt-get install -y golang-go"
        );
        let dir = tempfile::tempdir().unwrap();
        for tc in toolchains {
            let built = gobuild::build(&tc).unwrap_or_else(|e| panic!("{}: {e}", tc.version));
            for program in ["api", "backend"] {
                let bin = built.dir.join(program);
                let data = std::fs::read(&bin).unwrap();
                let what = format!("{} {program}", tc.version);
                let sym = locate(&data, &what, POLL_WAIT).unwrap();
                assert_eq!(sym.table, Table::Symtab, "{what}");
                assert!(
                    (2..=6).contains(&sym.rets.len()),
                    "{what}: RETs {:x?}",
                    sym.rets
                );
                assert_eq!(
                    sym.probe_at,
                    sym.address + 4,
                    "{what}: Jcc after the stack check"
                );
                assert!(
                    sym.rets
                        .iter()
                        .all(|r| *r > sym.address && *r < sym.address + sym.size)
                );

                let write = locate(&data, &what, FD_WRITE).unwrap();
                assert_eq!(
                    write.probe_at,
                    write.address + 9,
                    "{what}: big-frame stack check"
                );

                let elf = object::File::parse(&*data).unwrap();
                let (addr, size) = from_pclntab(&elf, POLL_WAIT).unwrap();
                assert_eq!(addr, sym.address, "{what}: pclntab address");
                assert!(
                    size >= sym.size && size < sym.size + 32,
                    "{what}: {size} vs {}",
                    sym.size
                );
                // The base comes from runtime.firstmoduledata, not the pcHeader's textStart
                // (which Go 1.27 leaves zero); internally linked, it is the start of .text.
                let tab = elf.section_by_name(".gopclntab").unwrap();
                let d = tab.data().unwrap();
                let pcln = u64_at(d, 64).unwrap() as usize;
                let text = text_base(
                    &elf,
                    tab.address(),
                    u64_at(d, 32).unwrap(),
                    u32_at(d, pcln).unwrap(),
                );
                assert_eq!(
                    text,
                    elf.section_by_name(".text").map(|s| s.address()),
                    "{what}"
                );

                let bare = stripped(&bin, dir.path());
                let pcl = locate(&bare, &what, POLL_WAIT).unwrap();
                assert_eq!(pcl.table, Table::Pclntab, "{what}: stripped copy");
                assert_eq!(pcl.address, sym.address, "{what}");
                assert_eq!(pcl.probe_at, sym.probe_at, "{what}");
                assert_eq!(pcl.rets, sym.rets, "{what}: same RETs from pclntab");
                assert_eq!(pcl.file_offset(pcl.probe_at), sym.file_offset(sym.probe_at));
                // Non-PIE Go binaries map .text at its file offset + 0x400000.
                assert_eq!(
                    sym.file_offset(sym.address),
                    sym.address - 0x40_0000,
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn a_binary_without_any_symbols_is_refused_with_the_fix() {
        let tc = Toolchain::all().into_iter().next().expect("a Go toolchain");
        let built = gobuild::build(&tc).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut bare = stripped(&built.dir.join("api"), dir.path());
        // What a Go older than 1.18 or a mangled binary looks like: no readable pclntab.
        let elf = object::File::parse(&*bare).unwrap();
        let (off, _) = elf
            .section_by_name(".gopclntab")
            .unwrap()
            .file_range()
            .unwrap();
        drop(elf);
        bare[off as usize..off as usize + 4].fill(0);
        let err = locate(&bare, "/srv/api", POLL_WAIT)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/srv/api")
                && err.contains("without symbols")
                && err.contains("-ldflags=\"-s -w\"")
                && err.contains("Rebuild"),
            "{err}"
        );
    }

    #[test]
    fn functions_that_jump_out_are_refused() {
        // cmp rsp,[r14+0x10]; jbe +0; jmp rax
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x00, 0xff, 0xe0];
        assert!(
            probe_points(&code, 0x1000)
                .unwrap_err()
                .contains("indirect jump")
        );
        // cmp; jbe; ret; jmp far away (a tail call)
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x00, 0xc3, 0xe9, 0, 1, 0, 0];
        assert!(
            probe_points(&code, 0x1000)
                .unwrap_err()
                .contains("jump out")
        );
        let code = [0x49, 0x3b, 0x66, 0x10, 0x76, 0x01, 0xc3, 0xc3];
        assert_eq!(
            probe_points(&code, 0x1000).unwrap(),
            (0x1004, vec![0x1006, 0x1007])
        );
        // Big frame: lea r12,[rsp-0x20]; cmp r12,[r14+0x10]; jbe; ret
        let code = [
            0x4c, 0x8d, 0x64, 0x24, 0xe0, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x00, 0xc3,
        ];
        assert_eq!(probe_points(&code, 0x1000).unwrap(), (0x1009, vec![0x100b]));
        // No stack check, or one after an instruction that may change registers: the entry.
        assert_eq!(
            probe_points(&[0x90, 0xc3], 0x1000).unwrap(),
            (0x1000, vec![0x1001])
        );
        let code = [0x31, 0xc0, 0x49, 0x3b, 0x66, 0x10, 0x76, 0x00, 0xc3];
        assert_eq!(probe_points(&code, 0x1000).unwrap().0, 0x1000);
    }
}
