"""Strict Diameter peers written from RFC 6733 and TS 29.109 / 29.229, independent of gba/ and gbaio/."""
