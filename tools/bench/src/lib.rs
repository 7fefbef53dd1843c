//! The benchmarks (`bench-proxy`, `bench-cache`): each starts the service
//! binary and its well-known peer (squid, nginx) side by side on loopback
//! and prints their figures as ratios. Kept out of the services' crates so
//! the image's binaries and dependency trees carry nothing for measurement.
