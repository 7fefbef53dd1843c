//! Time synchronisation: NTP packets, sample filter, false-ticker rejection, clock discipline
