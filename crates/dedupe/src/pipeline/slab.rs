//! Storage for the trie's per-file records (candidates, settled files),
//! indexed by `u32`, with freed slots reused.
//!
//! Written here rather than taken from a slab crate because of how it
//! grows: in fixed chunks. A `Vec` grows by doubling, so at any moment up to
//! half its capacity (a third on average) is allocated and unused, and
//! while it doubles it briefly needs both copies; for the record kept per
//! file of a ten-million-file tree that is the difference between the
//! memory bound holding or not. Chunks are never moved once allocated.

/// Slots per chunk: large enough that the chunk table is small, small
/// enough that the last, partly filled chunk wastes little.
const CHUNK: usize = 4096;

pub(crate) struct Slab<T> {
    chunks: Vec<Vec<Option<T>>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, v: T) -> u32 {
        if let Some(i) = self.free.pop() {
            *self.slot(i) = Some(v);
            return i;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        let chunk = &mut self.chunks[n];
        chunk.push(Some(v));
        u32::try_from(n * CHUNK + chunk.len() - 1).expect("bounded by MAX_FILES")
    }

    fn slot(&mut self, i: u32) -> &mut Option<T> {
        let i = i as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    pub(crate) fn get(&self, i: u32) -> &T {
        let i = i as usize;
        self.chunks[i / CHUNK][i % CHUNK]
            .as_ref()
            .expect("a live slot")
    }

    pub(crate) fn get_mut(&mut self, i: u32) -> &mut T {
        self.slot(i).as_mut().expect("a live slot")
    }

    pub(crate) fn take(&mut self, i: u32) -> T {
        let v = self.slot(i).take().expect("a live slot");
        self.free.push(i);
        v
    }

    /// The live values in index order, each chunk freed once passed.
    pub(crate) fn into_values(self) -> impl Iterator<Item = T> {
        self.chunks.into_iter().flatten().flatten()
    }

    /// The live values in index order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten().flatten()
    }

    /// Replaces the value in a live slot.
    pub(crate) fn replace(&mut self, i: u32, v: T) {
        *self.get_mut(i) = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_chunks_never_move() {
        let mut s = Slab::default();
        let ids: Vec<u32> = (0..CHUNK as u32 + 10).map(|v| s.insert(v)).collect();
        assert_eq!(ids.last(), Some(&(CHUNK as u32 + 9)));
        let first_chunk = s.chunks[0].as_ptr();
        assert_eq!(s.take(3), 3);
        assert_eq!(s.insert(77), 3, "a freed slot is reused");
        assert_eq!(*s.get(3), 77);
        s.replace(3, 78);
        assert_eq!(*s.get(CHUNK as u32 + 1), CHUNK as u32 + 1);
        assert_eq!(s.chunks[0].as_ptr(), first_chunk);
        assert_eq!(s.chunks[0].capacity(), CHUNK);
    }
}
