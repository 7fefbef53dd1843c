//! The log viewer: the newest line first, scrolled by line or by page,
//! `/` searches forward (towards older lines), `?` backward, `n` repeats
//! the last search, ENTER leaves.

use crate::key::Key;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pub name: String,
    /// Newest first.
    pub lines: Vec<String>,
    /// The first line on the screen.
    pub top: usize,
    /// The search being typed: forward or not, and the text so far.
    pub prompt: Option<(bool, String)>,
    /// The last search: forward or not, and its text.
    pub last: Option<(bool, String)>,
    /// The line the last search found.
    pub found: Option<usize>,
    /// A word for the status line ("Pattern not found: x").
    pub note: Option<String>,
}

impl LogView {
    pub fn new(name: String, lines: Vec<String>) -> LogView {
        LogView {
            name,
            lines,
            top: 0,
            prompt: None,
            last: None,
            found: None,
            note: None,
        }
    }

    fn last_top(&self, page: usize) -> usize {
        self.lines.len().saturating_sub(page)
    }

    /// Searches from the line after (or before) the top one, wrapping
    /// around the list.
    fn search(&mut self, forward: bool, text: &str, page: usize) {
        let n = self.lines.len();
        let needle = text.to_lowercase();
        let from = self.found.unwrap_or(self.top);
        let hit = (1..=n)
            .map(|step| {
                if forward {
                    (from + step) % n
                } else {
                    (from + n * step - step) % n
                }
            })
            .find(|&i| self.lines[i].to_lowercase().contains(&needle));
        match hit {
            Some(i) => {
                self.found = Some(i);
                self.top = i.min(self.last_top(page));
                self.note = None;
            }
            None => self.note = Some(format!("Pattern not found: {text}")),
        }
        self.last = Some((forward, text.to_owned()));
    }

    /// One key; true when the viewer should close.
    pub fn key(&mut self, key: Key, page: usize) -> bool {
        if let Some((forward, text)) = &mut self.prompt {
            match key {
                Key::Char(c) => text.push(c),
                Key::Backspace => {
                    text.pop();
                }
                Key::Esc => self.prompt = None,
                Key::Enter => {
                    let (forward, text) = (*forward, text.clone());
                    self.prompt = None;
                    if !text.is_empty() && !self.lines.is_empty() {
                        self.search(forward, &text, page);
                    }
                }
                _ => {}
            }
            return false;
        }
        self.note = None;
        match key {
            Key::Up => self.top = self.top.saturating_sub(1),
            Key::Down => self.top = (self.top + 1).min(self.last_top(page)),
            Key::PageUp => self.top = self.top.saturating_sub(page),
            Key::PageDown => self.top = (self.top + page).min(self.last_top(page)),
            Key::Home => self.top = 0,
            Key::End => self.top = self.last_top(page),
            Key::Char('/') => self.prompt = Some((true, String::new())),
            Key::Char('?') => self.prompt = Some((false, String::new())),
            Key::Char(c @ ('n' | 'N')) => {
                if let Some((forward, text)) = self.last.clone() {
                    if !self.lines.is_empty() {
                        self.search(forward == (c == 'n'), &text, page);
                    }
                }
            }
            Key::Enter | Key::Esc => return true,
            _ => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> LogView {
        let lines = (0..50).rev().map(|i| format!("line {i}")).collect();
        LogView::new("proxy".into(), lines)
    }

    fn typed(v: &mut LogView, keys: &str) {
        for c in keys.chars() {
            v.key(Key::Char(c), 10);
        }
    }

    #[test]
    fn pages_stop_at_the_ends() {
        let mut v = view();
        v.key(Key::PageDown, 10);
        assert_eq!(v.top, 10);
        for _ in 0..10 {
            v.key(Key::PageDown, 10);
        }
        assert_eq!(v.top, 40);
        v.key(Key::PageUp, 10);
        v.key(Key::Up, 10);
        assert_eq!(v.top, 29);
    }

    #[test]
    fn searches_forward_and_backward_and_wrap() {
        let mut v = view();
        typed(&mut v, "/line 3");
        v.key(Key::Enter, 10);
        // Newest first: "line 49" is at 0, so "line 39" at 10.
        assert_eq!(v.found, Some(10));
        typed(&mut v, "n");
        assert_eq!(v.found, Some(11)); // line 38
        typed(&mut v, "N");
        assert_eq!(v.found, Some(10));
        typed(&mut v, "?line 49");
        v.key(Key::Enter, 10);
        assert_eq!((v.found, v.top), (Some(0), 0));
        typed(&mut v, "/nothing");
        v.key(Key::Enter, 10);
        assert_eq!(v.note.as_deref(), Some("Pattern not found: nothing"));
        assert!(!v.key(Key::Down, 10));
        assert!(v.key(Key::Enter, 10));
    }
}
