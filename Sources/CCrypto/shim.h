// OpenSSL's libcrypto (Debian's libssl-dev, already on the machine beside
// libcurl): SHA-256 (one-shot, and incremental through EVP for documents
// hashed as they arrive), a constant-time compare, and the CSPRNG for the
// secrets of keys created at run time (RAND_bytes). Nothing else is used.
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
