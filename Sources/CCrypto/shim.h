// OpenSSL's libcrypto (Debian's libssl-dev, already on the machine beside
// libcurl): SHA-256 (one-shot, and incremental through EVP for documents
// hashed as they arrive) and a constant-time compare. Nothing else is used.
#include <openssl/sha.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
