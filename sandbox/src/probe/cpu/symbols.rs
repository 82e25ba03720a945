//! Instruction pointers to function names: user addresses through the process's mappings and
//! its ELF `.symtab`, kernel addresses through /proc/kallsyms.
//!
//! One formula covers PIE and non-PIE binaries and shared libraries: the mapping gives the file
//! offset of an address, the PT_LOAD segment holding that offset gives its link-time address,
//! which is what the symbol table lists. Mappings are read from /proc, so this must run while
//! the process is alive.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// One executable mapping of /proc/PID/maps.
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    /// (device, inode): the file's identity, shared by every process that maps it.
    file: (String, u64),
    path: String,
}

/// What symbolizing needs of one ELF file.
struct Elf {
    /// PT_LOAD segments as (file offset, file size, virtual address).
    loads: Vec<(u64, u64, u64)>,
    /// Function symbols as (address, size, name), sorted by address.
    syms: Vec<(u64, u64, String)>,
}

impl Elf {
    fn read(bytes: &[u8]) -> Option<Elf> {
        let file = object::File::parse(bytes).ok()?;
        let loads = file
            .segments()
            .map(|s| {
                let (off, size) = s.file_range();
                (off, size, s.address())
            })
            .collect();
        let mut syms: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), display_name(s.name().ok()?))))
            .collect();
        if syms.is_empty() {
            // Stripped shared libraries still list their exported functions.
            syms = file
                .dynamic_symbols()
                .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
                .filter_map(|s| Some((s.address(), s.size(), display_name(s.name().ok()?))))
                .collect();
        }
        syms.sort_by_key(|s| s.0);
        Some(Elf { loads, syms })
    }

    fn name_at(&self, file_off: u64) -> Option<&str> {
        let &(p_off, _, p_vaddr) = self
            .loads
            .iter()
            .find(|(off, size, _)| (*off..off + size).contains(&file_off))?;
        let vaddr = file_off - p_off + p_vaddr;
        let i = self.syms.partition_point(|s| s.0 <= vaddr).checked_sub(1)?;
        let (addr, size, name) = &self.syms[i];
        (*size == 0 || vaddr < addr + size).then_some(name.as_str())
    }
}

/// Go's linker marks assembly functions' ABI wrappers `.abi0`; the source name is without it.
/// `;` separates frames in folded stacks, so it must not appear in a name.
fn display_name(raw: &str) -> String {
    raw.strip_suffix(".abi0").unwrap_or(raw).replace(';', ":")
}

fn parse_maps(pid: u32) -> Vec<Mapping> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, offset, dev, inode) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            if !perms.contains('x') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                file: (dev.to_string(), inode.parse().ok()?),
                path: f.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// Caches mappings per process, symbol tables per file and names per address.
#[derive(Default)]
pub struct Symbolizer {
    maps: HashMap<u32, Vec<Mapping>>,
    files: HashMap<(String, u64), Option<Rc<Elf>>>,
    names: HashMap<(u32, u64), String>,
    kernel: Option<BTreeMap<u64, String>>,
}

impl Symbolizer {
    /// The function holding `ip` in process `pid`, or the mapping's file name in brackets.
    pub fn user(&mut self, pid: u32, ip: u64) -> String {
        if let Some(n) = self.names.get(&(pid, ip)) {
            return n.clone();
        }
        let name = self.resolve(pid, ip);
        self.names.insert((pid, ip), name.clone());
        name
    }

    fn resolve(&mut self, pid: u32, ip: u64) -> String {
        let find = |maps: &[Mapping]| maps.iter().position(|m| (m.start..m.end).contains(&ip));
        let mut at = self.maps.get(&pid).and_then(|m| find(m));
        if at.is_none() {
            // New process, or a mapping made since (a library loaded late): read them again.
            self.maps.insert(pid, parse_maps(pid));
            at = self.maps.get(&pid).and_then(|m| find(m));
        }
        let Some(maps) = self.maps.get(&pid) else {
            return "[unknown]".into();
        };
        let Some(m) = at.map(|i| &maps[i]) else {
            return "[unknown]".into();
        };
        let base = m.path.rsplit('/').next().unwrap_or_default();
        let module = if base.is_empty() {
            "[anon]".to_string()
        } else if base.starts_with('[') {
            base.to_string()
        } else {
            format!("[{base}]")
        };
        let file_off = ip - m.start + m.offset;
        let elf = self
            .files
            .entry(m.file.clone())
            .or_insert_with(|| {
                // map_files reaches the very file mapped, even if it was replaced on disk since.
                let via = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
                let bytes = std::fs::read(via)
                    .or_else(|_| std::fs::read(format!("/proc/{pid}/root{}", m.path)))
                    .ok()?;
                Elf::read(&bytes).map(Rc::new)
            })
            .clone();
        elf.and_then(|e| e.name_at(file_off).map(str::to_string))
            .unwrap_or(module)
    }

    /// The kernel function holding `ip`.
    pub fn kernel(&mut self, ip: u64) -> String {
        let syms = self.kernel.get_or_insert_with(crate::ebpf::kernel_symbols);
        syms.range(..=ip)
            .next_back()
            .map(|(_, n)| n.replace(';', ":"))
            .unwrap_or_else(|| "[kernel]".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_lose_the_abi_suffix() {
        assert_eq!(display_name("runtime.goexit.abi0"), "runtime.goexit");
        assert_eq!(display_name("main.(*T).m"), "main.(*T).m");
        assert_eq!(display_name("a;b"), "a:b");
    }

    /// This test binary symbolizes one of its own functions, whatever its load address.
    #[test]
    fn own_function_resolves_through_the_mappings() {
        #[inline(never)]
        fn marker_function_for_symbolizer() -> u64 {
            marker_function_for_symbolizer as *const () as u64
        }
        let ip = marker_function_for_symbolizer() + 1;
        let name = Symbolizer::default().user(std::process::id(), ip);
        assert!(name.contains("marker_function_for_symbolizer"), "{name}");
    }
}
