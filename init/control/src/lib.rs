//! The control API of PID 1: JSON protocol types, client, and the gatewayctl CLI
