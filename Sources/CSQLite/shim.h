// SQLite 3 from Debian (libsqlite3-dev). SQLITE_TRANSIENT is a macro over a
// cast Swift cannot import: bind through these wrappers.
#include <sqlite3.h>
static inline int kimi_sqlite_bind_text(sqlite3_stmt *s, int i, const char *v, int n) { return sqlite3_bind_text(s, i, v, n, SQLITE_TRANSIENT); }
static inline int kimi_sqlite_bind_blob(sqlite3_stmt *s, int i, const void *v, int n) { return sqlite3_bind_blob(s, i, v, n, SQLITE_TRANSIENT); }
