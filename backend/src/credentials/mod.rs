//! What proves who a caller is, and what slows down guessing it: access
//! tokens (JWT) and random tokens kept only as hashes (`tokens`), password
//! hashing (`password`), and the throttle on the endpoints anyone can call
//! (`throttle`). No HTTP here: `auth` and `accounts` build on these, and
//! `state` holds the token keys and the limiter, so this sits below both.

pub mod password;
pub mod throttle;
pub mod tokens;
