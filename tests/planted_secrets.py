"""Planted secrets, one of each kind kbbot must keep off wiki pages (shared by the unit and page tests)."""

from __future__ import annotations

# One planted secret of each kind. Formats: Slack's token docs (xoxb/xoxp/xoxe/xapp), Discord's bot token
# (base64 id . timestamp . hmac), GitHub's ghp_/github_pat_, AWS access key ids (AKIA…), Google API keys (AIza…),
# a JWT (jwt.io's example), a PEM private key block, a password in a URL. All values are made up.
PLANTED = {
    "slack bot": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack user": "xoxp-123456789012-123456789012-1234567890123-0123456789abcdef0123456789abcdef",
    "slack refresh": "xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLWFiY2RlZmdoaWprbG1ub3A",
    "slack rotated": "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIzLWFiY2Q",
    "slack app": "xapp-1-A0123ABCDEF-1234567890123-0123456789abcdef0123456789abcdef0123456789abcdef",
    "slack webhook": "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "discord": "MTA4NzY1NDMyMTA5ODc2NTQzMg.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB",
    "discord old": "NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "github fine-grained": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "gcp": "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "gcp oauth": "ya29.a0AfH6SMBx-abcdefghijklmnopqrstuvwxyz0123456789",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MaXw\n"
    "c2VjcmV0c2VjcmV0c2VjcmV0\n-----END RSA PRIVATE KEY-----",
}
#: Parts of each secret that must not survive anywhere (the whole value, or its secret half).
LEAKS = {name: value.split("\n")[1] if "\n" in value else value for name, value in PLANTED.items()}
