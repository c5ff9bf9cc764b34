//! External merge sort of fixed-size span items: chunks of at most `cap`
//! items are sorted in memory and spilled to anonymous temp files (32 bytes
//! an item), then merged k ways. Memory: one chunk, plus a 64 KiB read
//! buffer per spilled chunk during the merge.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Items per in-memory chunk by default (32 MB).
pub const DEFAULT_CHUNK: usize = 1 << 20;

/// One span, as the speedscope exporter needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub pid: u32,
    pub tid: u64,
    pub start: i64,
    pub end: i64,
    pub frame: u32,
}

impl Item {
    const SIZE: usize = 32;

    /// Thread, then start, then the longer span first (parents before their
    /// children when both start together).
    fn key(&self) -> (u32, u64, i64, Reverse<i64>, u32) {
        (
            self.pid,
            self.tid,
            self.start,
            Reverse(self.end),
            self.frame,
        )
    }

    fn encode(&self, b: &mut [u8; Self::SIZE]) {
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..12].copy_from_slice(&self.tid.to_le_bytes());
        b[12..20].copy_from_slice(&self.start.to_le_bytes());
        b[20..28].copy_from_slice(&self.end.to_le_bytes());
        b[28..32].copy_from_slice(&self.frame.to_le_bytes());
    }

    fn decode(b: &[u8; Self::SIZE]) -> Item {
        Item {
            pid: u32::from_le_bytes(b[0..4].try_into().unwrap()),
            tid: u64::from_le_bytes(b[4..12].try_into().unwrap()),
            start: i64::from_le_bytes(b[12..20].try_into().unwrap()),
            end: i64::from_le_bytes(b[20..28].try_into().unwrap()),
            frame: u32::from_le_bytes(b[28..32].try_into().unwrap()),
        }
    }
}

impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Item {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key().cmp(&o.key())
    }
}

/// Collects items, spilling sorted chunks to temp files.
pub struct Sorter {
    chunk: Vec<Item>,
    cap: usize,
    spilled: Vec<File>,
}

impl Sorter {
    pub fn new(cap: usize) -> Sorter {
        Sorter {
            chunk: Vec::new(),
            cap: cap.max(1),
            spilled: vec![],
        }
    }

    pub fn push(&mut self, it: Item) -> io::Result<()> {
        self.chunk.push(it);
        if self.chunk.len() >= self.cap {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.chunk.sort_unstable();
        let mut w = BufWriter::with_capacity(1 << 16, tempfile::tempfile()?);
        let mut b = [0u8; Item::SIZE];
        for it in &self.chunk {
            it.encode(&mut b);
            w.write_all(&b)?;
        }
        let mut f = w.into_inner().map_err(|e| e.into_error())?;
        f.rewind()?;
        self.spilled.push(f);
        self.chunk.clear();
        Ok(())
    }

    /// Number of chunks written to disk.
    #[cfg(test)]
    pub fn spilled(&self) -> usize {
        self.spilled.len()
    }

    /// All items in order.
    pub fn finish(mut self) -> io::Result<Merged> {
        if self.spilled.is_empty() {
            self.chunk.sort_unstable();
            return Ok(Merged::Memory(std::mem::take(&mut self.chunk).into_iter()));
        }
        if !self.chunk.is_empty() {
            self.spill()?;
        }
        self.chunk = Vec::new();
        let mut readers: Vec<BufReader<File>> = self
            .spilled
            .drain(..)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .collect();
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(it) = read_item(r)? {
                heap.push(Reverse((it, i)));
            }
        }
        Ok(Merged::Files { readers, heap })
    }
}

fn read_item(r: &mut impl Read) -> io::Result<Option<Item>> {
    let mut b = [0u8; Item::SIZE];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(Item::decode(&b))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// The sorted items.
pub enum Merged {
    Memory(std::vec::IntoIter<Item>),
    Files {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<(Item, usize)>>,
    },
}

impl Merged {
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        match self {
            Merged::Memory(it) => Ok(it.next()),
            Merged::Files { readers, heap } => {
                let Some(Reverse((it, i))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = read_item(&mut readers[i])? {
                    heap.push(Reverse((next, i)));
                }
                Ok(Some(it))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_spilled_chunks_in_order() {
        let mut s = Sorter::new(7);
        let mut x = 12345u64;
        let mut all = vec![];
        for i in 0..100u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let it = Item {
                pid: (x % 2) as u32,
                tid: x % 3,
                start: (x % 50) as i64,
                end: (x % 50 + x % 7) as i64,
                frame: i,
            };
            all.push(it);
            s.push(it).unwrap();
        }
        assert!(s.spilled() > 1);
        let mut m = s.finish().unwrap();
        let mut got = vec![];
        while let Some(it) = m.next_item().unwrap() {
            got.push(it);
        }
        all.sort();
        assert_eq!(got, all);
    }
}
