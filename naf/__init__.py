"""NAF kit: what an Enrolment Target (oneM2M MAF, CSE, AE) embeds to act as a GBA NAF.

Zn client and key cache, Ua HTTP Digest middleware, Ua TLS-PSK, oneM2M Km helpers and a demo NAF.
"""
