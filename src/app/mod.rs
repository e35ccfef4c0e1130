//! Explorer state, actions and update: no terminal I/O (lands with the explorer).
