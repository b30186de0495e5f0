//! Traceback folding (work in progress).
