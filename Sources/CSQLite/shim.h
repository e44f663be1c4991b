// SQLite 3 from Debian (libsqlite3-dev). SQLITE_TRANSIENT is a macro over a
// cast Swift cannot import: bind through these wrappers.
#include <sqlite3.h>
static inline int kimi_sqlite_bind_text(sqlite3_stmt *s, int i, const char *v, int n) { return sqlite3_bind_text(s, i, v, n, SQLITE_TRANSIENT); }
static inline int kimi_sqlite_bind_blob(sqlite3_stmt *s, int i, const void *v, int n) { return sqlite3_bind_blob(s, i, v, n, SQLITE_TRANSIENT); }
// Before SQLite's first use: no allocation statistics (a global mutex and
// counters around every malloc SQLite makes; the gateway never reads them).
static inline int kimi_sqlite_configure_once(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
// Text SQLite may read in place until the statement's next reset (the drain's
// journal bytes, alive for the whole transaction): no copy.
static inline int kimi_sqlite_bind_text_static(sqlite3_stmt *s, int i, const char *v, int n) { return sqlite3_bind_text(s, i, v, n, SQLITE_STATIC); }
