// OpenSSL's libcrypto (Debian's libssl-dev, already on the machine beside
// libcurl): SHA-256 and a constant-time compare. Nothing else is used.
#include <openssl/sha.h>
#include <openssl/crypto.h>
