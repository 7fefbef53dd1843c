//! A unit's output cut into log lines, sans I/O: bytes in, lines out. A
//! line is at most [`MAX_LINE`] bytes (a longer one goes on in the next
//! line), and bytes that are not UTF-8 are kept as U+FFFD. The reader it
//! replaced (`lines()` on the pipe) buffered a line of any length and
//! stopped at the first invalid byte, after which nobody read the unit's
//! pipe: a unit that printed binary lost its log for good, and blocked on
//! its next write once the pipe was full.

/// The longest line kept whole: longer output is cut into lines this long.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The complete lines in `bytes` (with what came before them), without
    /// their line ends; the rest waits for more.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let (take, end) = match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (bytes.len().min(room), bytes.len() >= room),
            };
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if end {
                out.push(self.take());
            }
        }
        out
    }

    /// What is left when the pipe closes, as a last line (None when nothing).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_whole_whatever_the_reads() {
        let mut l = Lines::default();
        assert!(l.push(b"one\r\ntw").len() == 1);
        assert_eq!(l.push(b"o\nthree"), ["two"]);
        assert_eq!(l.finish().as_deref(), Some("three"));
        assert_eq!(l.finish(), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_and_the_next_lines_too() {
        let mut l = Lines::default();
        assert_eq!(
            l.push(b"bin \xff\xfe\x00 end\nnext line\n"),
            ["bin \u{fffd}\u{fffd}\u{0} end", "next line"]
        );
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_bound() {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for _ in 0..100 {
            out.extend(l.push(&[b'x'; 1000]));
        }
        out.extend(l.push(b"\nafter\n"));
        assert_eq!(out.len(), 100_000 / MAX_LINE + 2);
        assert!(out.iter().all(|line| line.len() <= MAX_LINE));
        assert_eq!(out[..out.len() - 1].concat().len(), 100_000);
        assert_eq!(out.last().map(String::as_str), Some("after"));
        // Exactly a bound's worth then its newline: one line, no empty one.
        let mut l = Lines::default();
        let mut line = vec![b'y'; MAX_LINE - 1];
        line.push(b'\n');
        assert_eq!(l.push(&line).len(), 1);
        assert_eq!(l.finish(), None);
    }
}
