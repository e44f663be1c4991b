// SharedLimiter
