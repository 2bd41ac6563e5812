"""oneM2M M2M Enrolment Function: the direct Remote Security Provisioning Frameworks (TS-0003 8.3.2.1
pre-provisioned symmetric key, 8.3.2.2 certificate-based) and Km retrieval by MAFs. The GBA-based
framework is the BSF itself (Ke = Ks, KeID = B-TID)."""
