//! Unit tests of both formats' rules.

use super::*;
