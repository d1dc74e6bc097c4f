"""What econe and onelite share with OpenNebula itself: its template language (parser and writer),
the server_cipher token codec, and ACL rule strings. Neither side owns these; both follow oned."""
