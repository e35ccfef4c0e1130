//! A tiny seeded generator for the parsers' random-input smoke tests: the same
//! inputs on every run, no dependency.

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `seeds` with one to `max_edits` random edits: a character from
    /// `alphabet` inserted, one removed, or the rest cut off.
    pub fn mutate<S: AsRef<str>>(
        &mut self,
        seeds: &[S],
        alphabet: &[char],
        max_edits: usize,
    ) -> String {
        let s = seeds[self.below(seeds.len())].as_ref().chars().collect();
        self.edit(s, alphabet, max_edits).into_iter().collect()
    }

    /// [`XorShift::mutate`] for binary inputs.
    pub fn mutate_bytes<S: AsRef<[u8]>>(
        &mut self,
        seeds: &[S],
        alphabet: &[u8],
        max_edits: usize,
    ) -> Vec<u8> {
        let s = seeds[self.below(seeds.len())].as_ref().to_vec();
        self.edit(s, alphabet, max_edits)
    }

    fn edit<T: Copy>(&mut self, mut s: Vec<T>, alphabet: &[T], max_edits: usize) -> Vec<T> {
        for _ in 0..1 + self.below(max_edits) {
            let at = self.below(s.len() + 1);
            match self.below(3) {
                0 => s.insert(at, alphabet[self.below(alphabet.len())]),
                1 if at < s.len() => {
                    s.remove(at);
                }
                _ => s.truncate(at),
            }
        }
        s
    }
}
