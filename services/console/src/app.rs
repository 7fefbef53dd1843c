//! The console's I/O: the terminal (raw mode, keys, resizes, redraws) and
//! the control API (one request at a time on a worker thread, so the screen
//! keeps answering while a ping runs). Each turn of the loop feeds the
//! model a key, an answer or a tick, and draws it.

use std::io::{self, Stdout};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use gateway_control::{Client, ClientError, Request};
use ratatui::backend::{Backend, ClearType, CrosstermBackend};
use ratatui::Terminal;

use crate::model::{Action, Key, Purpose, Refusal, State};
use crate::{tty, view, Args};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("terminal: {0}")]
    Terminal(io::Error),
    #[error("terminal size: {0}")]
    Size(io::Error),
}

/// The model's key for a terminal key press, if it has one.
pub fn key(event: KeyEvent) -> Option<Key> {
    if event.kind != KeyEventKind::Press {
        return None;
    }
    Some(match event.code {
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Char(c) if !event.modifiers.contains(KeyModifiers::CONTROL) => Key::Char(c),
        _ => return None,
    })
}

fn timeout(request: &Request) -> Duration {
    match request {
        // One echo a second, one second to wait for each.
        Request::Ping { count, .. } => Duration::from_secs(u64::from(count.unwrap_or(4)) * 2 + 10),
        // Collecting, packing and encrypting take a few seconds; as
        // gatewayctl waits.
        Request::DiagnosticsReport => Duration::from_secs(300),
        // A connectivity check tries five hosts, each with its own
        // timeouts (a registration runs one first); as gatewayctl waits.
        Request::Register { .. } | Request::Platform { check: true } | Request::ProxyTest => {
            Duration::from_secs(120)
        }
        _ => Duration::from_secs(30),
    }
}

/// Sends each request on a new connection (PID 1 may have restarted the
/// listener) and hands back the answer.
fn worker(
    socket: std::path::PathBuf,
    requests: Receiver<(Purpose, Request)>,
    answers: Sender<(Purpose, Result<serde_json::Value, Refusal>)>,
) {
    for (purpose, request) in requests {
        let result = Client::connect(&socket, timeout(&request))
            .and_then(|mut c| c.call(&request))
            .map_err(|e| match e {
                ClientError::Refused(e) => e,
                other => Refusal::new(other.to_string()),
            });
        if answers.send((purpose, result)).is_err() {
            return;
        }
    }
}

fn restore() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), crossterm::cursor::Show);
}

pub fn run(args: &Args) -> Result<(), AppError> {
    let stdout = io::stdout();
    tty::ensure_size(stdout.as_fd(), args.cols, args.rows).map_err(AppError::Size)?;
    crossterm::terminal::enable_raw_mode().map_err(AppError::Terminal)?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        hook(info);
    }));
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout)).map_err(AppError::Terminal)?;
    let result = event_loop(args, &mut terminal);
    restore();
    result
}

fn event_loop(
    args: &Args,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
) -> Result<(), AppError> {
    let (request_tx, request_rx) = mpsc::channel();
    let (answer_tx, answer_rx) = mpsc::channel();
    let socket = args.socket.clone();
    std::thread::spawn(move || worker(socket, request_rx, answer_tx));
    let send = |actions: Vec<Action>| {
        for Action::Call(purpose, request) in actions {
            let _ = request_tx.send((purpose, request));
        }
    };
    let mut state = State::new();
    send(state.start());
    let period = Duration::from_secs(args.redraw.max(1));
    let mut last_full = Instant::now();
    let mut full = true;
    loop {
        if full {
            // Whatever the kernel wrote over the screen goes away. Not
            // Terminal::clear: it asks the terminal where its cursor is,
            // and a serial line may have nobody to answer.
            terminal
                .backend_mut()
                .clear_region(ClearType::All)
                .map_err(AppError::Terminal)?;
            // Both buffers blank: the next draw writes every cell.
            terminal.swap_buffers();
            last_full = Instant::now();
            full = false;
        }
        terminal
            .draw(|f| {
                state.rows = f.area().height;
                view::render(f, &state);
            })
            .map_err(AppError::Terminal)?;
        let wait = period
            .saturating_sub(last_full.elapsed())
            .min(Duration::from_millis(200));
        if event::poll(wait).map_err(AppError::Terminal)? {
            match event::read().map_err(AppError::Terminal)? {
                Event::Key(k)
                    if k.code == KeyCode::Char('l')
                        && k.modifiers.contains(KeyModifiers::CONTROL) =>
                {
                    full = true;
                }
                Event::Key(k) => {
                    if let Some(k) = key(k) {
                        send(state.key(k));
                        // Any key repairs the screen.
                        full = true;
                    }
                }
                Event::Resize(..) => full = true,
                _ => {}
            }
        }
        while let Ok((purpose, result)) = answer_rx.try_recv() {
            send(state.answer(purpose, result));
        }
        if last_full.elapsed() >= period {
            full = true;
            send(state.tick());
        }
    }
}
