# ruff: noqa: E501  (test data: long literals read better whole)
"""A labelled PII corpus: sentences with the values a detector must find, and near-misses it must not.

Each case is (text, [(entity, value), ...]). Values are the exact substrings expected.
Card numbers are the networks' published test numbers; IBANs are the registry's examples;
keys and tokens are made up but shaped like the real ones.
"""

from __future__ import annotations

Case = tuple[str, list[tuple[str, str]]]

EMAILS = [
    "alice@example.com",
    "bob.smith@example.co.uk",
    "carol+newsletter@mail.example.org",
    "dave_o'brien@example.net".replace("'", ""),
    "Erin.Jones@Example.COM",
    "frank-99@sub.domain.example.io",
    "grace.hopper@navy.mil",
    "h@x.dev",
    "ivan%relay@example.travel",
    "jane.doe2024@university.edu",
    "k.lee@startup.ai",
    "support@my-company.example",
    "first.last@xn--bcher-kva.example",
]
EMAIL_TEMPLATES = [
    "Please email {} for the refund.",
    "Contact: <{}>",
    "Reach me ({}) after lunch.",
    "Send it to {}.",
    '{{"user": "{}", "active": true}}',
    "mailto:{}?subject=hello",
]

PHONES = [
    "+1 (415) 555-2671",
    "+14155552671",
    "(415) 555-2671",
    "415-555-2671",
    "415.555.2671",
    "415 555 2671",
    "1-800-555-0199",
    "+44 20 7946 0958",
    "+44 7700 900123",
    "020 7946 0958",
    "07700 900123",
    "+49 30 901820",
    "+49 (0)30 901820",
    "+33 1 23 45 67 89",
    "+91 98765 43210",
    "+61 2 9374 4000",
    "+81 3-1234-5678",
    "+86 10 1234 5678",
    "+34 912 345 678",
    "+31 20 123 4567",
    "+353 1 234 5678",
    "+55 11 91234-5678",
]
PHONE_TEMPLATES = [
    "Call me on {} tomorrow.",
    "My number is {}",
    "Phone: {}, ask for Sam.",
    "Text {} when you land.",
]
BARE_PHONES = [
    ("Call me at 4155552671 after six.", "4155552671"),
    ("Phone 5551234567 is the desk line.", "5551234567"),
    ("mobile: 07700900123", "07700900123"),
]

CARDS = [
    "4111 1111 1111 1111",
    "4111111111111111",
    "4111-1111-1111-1111",
    "4012888888881881",
    "5555555555554444",
    "5105 1051 0510 5100",
    "2223003122003222",
    "378282246310005",
    "3714 496353 98431",
    "6011111111111117",
    "6011 0009 9013 9424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "38520000023237",
    "6200000000000005",
    "4000056655665556",
    "5200828282828210",
]
CARD_TEMPLATES = ["My card is {} exp 12/27.", "Charge {} please", "cc={}", "Card number: {}."]

IBANS = [
    "DE89370400440532013000",
    "DE89 3704 0044 0532 0130 00",
    "GB29NWBK60161331926819",
    "GB29 NWBK 6016 1331 9268 19",
    "FR1420041010050500013M02606",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "CH9300762011623852957",
    "AT611904300234573201",
    "SE4550000000058398257466",
    "PL61109010140000071219812874",
    "PT50000201231234567890154",
    "IE29AIBK93115212345678",
    "DK5000400440116243",
    "NO9386011117947",
    "FI2112345600000785",
]
IBAN_TEMPLATES = ["Wire it to IBAN {} today.", "Account: {}", "Beneficiary {} (Berlin)."]

SSNS = [
    ("My SSN is 123-45-6789.", "123-45-6789"),
    ("SSN: 078-05-1120", "078-05-1120"),
    ("ssn 219-09-9999 on file", "219-09-9999"),
    ("Social security number 536 22 1234 please.", "536 22 1234"),
    ("Her social security number is 536221234.", "536221234"),
    ("SSN=372-22-4561", "372-22-4561"),
    ("Applicant 287-65-4321 applied.", "287-65-4321"),
    ("tax id 401-23-7788 (US)", "401-23-7788"),
    ("Taxpayer ssn: 612345678", "612345678"),
    ('{"ssn": "555-12-3456"}', "555-12-3456"),
]

IPS = [
    "8.8.8.8",
    "10.0.0.1",
    "172.16.254.1",
    "192.168.1.20",
    "255.255.255.255",
    "203.0.113.195",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8::1",
    "fe80::1ff:fe23:4567:890a",
    "::1",
    "2606:4700:4700::1111",
]
IP_TEMPLATES = [
    "The server is at {} now.",
    "ssh admin@{}".replace("admin@", "admin at "),
    "Blocked {} after the attack",
    "client_ip={}",
]
IP_WITH_PORT = [("Connect to 192.168.0.10:8080 for the admin UI.", "192.168.0.10")]

API_KEYS = [
    "sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5z",
    "sk-1234567890abcdefghijklmnopqrstuvwxyzABCD",
    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
    "sk_live_51HxYzAbCdEfGhIjKlMnOpQr",
    "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
    "xoxb-123456789012-abcdefghijkl",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "glpat-abcdefghij1234567890",
    "hf_abcdefghijklmnopqrstuvwxyz1234",
]
KEY_TEMPLATES = ["OPENAI_API_KEY={}", "use the key {} for staging", "export TOKEN='{}'"]
AWS = [
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("The role key ASIAY34FZKBOKMUTVV7A expired.", "ASIAY34FZKBOKMUTVV7A"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("AWS secret: je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
    ("creds AKIAI44QH8DHBEXAMPLE in the repo", "AKIAI44QH8DHBEXAMPLE"),
]
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
PRIVATE_KEYS = [
    f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----",
    f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}-----END PRIVATE KEY-----",
    f"-----BEGIN EC PRIVATE KEY-----\n{PEM_BODY}-----END EC PRIVATE KEY-----",
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}-----END OPENSSH PRIVATE KEY-----",
]
JWTS = [
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJsb2NrZ2F0ZSIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu",
    "eyJraWQiOiJrMSIsImFsZyI6IkVTMjU2In0.eyJhdWQiOiJhcGkiLCJzY29wZSI6InJlYWQifQ.MEUCIQDx_signature_bytes_here",
]
JWT_TEMPLATES = ["Authorization: Bearer {}", "token={} (expires soon)"]

# Text that looks like PII and is not: every one must come back with no finding.
NEAR_MISSES = [
    "Order #4111111111111112 shipped on 2024-01-15.",
    "Your order number is 1234567890123456 and it ships Friday.",
    "Invoice 2024-000123 is due 15/01/2024.",
    "Tracking 1Z999AA10123456784 via UPS.",
    "The meeting is on 2024-01-15 at 10:30:45.",
    "Deadline: 01/15/2024, then 02.03.2024.",
    "Upgrade to version 1.2.3.4 before Friday.",
    "Running v10.4.1234 and v2.10.3 side by side.",
    "Windows build 10.0.19041.1 is installed.",
    "pip install scikit-learn==1.4.2 numpy>=1.26",
    "The sk-learn shorthand is ambiguous.",
    "task-manager-abcdefghijklmnopqrstuvwxyz is the service name.",
    "Commit e6bdd4812345678901234567890123456789abcd fixed it.",
    "UUID 123e4567-e89b-12d3-a456-426614174000 was created.",
    "Price: $1,234,567.89 (incl. VAT 19%).",
    "Coordinates 37.7749, -122.4194 are San Francisco.",
    "ISBN 978-3-16-148410-0 is the second edition.",
    "Call the function at line 4155 of main.py.",
    "The batch id 202401150930 ran for 1234567 ms.",
    "Room 1234, floor 5, building 67.",
    "The population grew from 1234567890 to 1300000000.",
    "Epoch millis 1700000000000 is November 2023.",
    "Use user@localhost for the local test.",
    "Mention @alice and @bob in the thread.",
    "The package foo@1.2.3 and bar@^2.0.0 are pinned.",
    "Format: name at example dot com is not an address.",
    "Send to a@b.c to see the validation error.",
    "SSN must not be 000-12-3456 or 666-12-3456.",
    "Numbers like 900-12-3456, 123-00-4567 and 123-45-0000 are invalid SSNs.",
    "The part no. 123-45-6789 is out of stock.",
    "Reference 123456789 was archived.",
    "Card 4111 1111 1111 1112 fails the Luhn check.",
    "Account 1234 5678 9012 3456 is a made-up number.",
    "Timestamp 1700000000123 in logs.",
    "IBAN DE89370400440532013001 has a bad checksum.",
    "GB00NWBK60161331926819 is not a valid IBAN.",
    "Product code AB12 CDEF 3456 is discontinued.",
    "999.1.1.1 is not an IP address.",
    "The ratio is 1.2.3 in semver.",
    "MAC address 00:1A:2B:3C:4D:5E belongs to the printer.",
    "Use std::vector and Foo::Add in C++.",
    "It happened at 12:30:45 UTC.",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END CERTIFICATE-----",
    "The header starts with eyJ but that is all.",
    "AKIA alone is just a prefix.",
    "Base64 aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Qgb2Yg is plain data.",
    "Zip code 94107-1234 and 10001.",
    "Call extension 4321 or dial 0.",
    "Version 2.0.0-rc.1+build.5678 ships today.",
    "Model gpt-4o-2024-08-06 and claude-3-5-sonnet-20241022 are in use.",
    "The hash sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matches.",
    "Order 4155552671 was returned.",
    "Serial number 5551234567 on the device.",
    "Tel-Aviv office opened in 2019.",
    "1-2-3-4-5 is a countdown.",
    "Score: 98.6.7 points",
    "Temperature 36.6 and pressure 120/80.",
    "There are 365 days and 8760 hours in a year.",
    "The range 10.0.0.0/8 is mentioned as a network, 256.1.1.1 is out of range.",
    "Room 020 7946 is on the second floor.",
    "Chapter 3.14.15.92 of the manual.",
    "Order ID: 5105105105105100 confirmed.",
    "She paid 4,111.11 for 1,111 items.",
    "Flight LH400 departs at 13:05 from gate B44.",
    "Node id 12345678901234567890 in the graph.",
    "Code 0000-0000-0000-0000 is a placeholder.",
    "Phone numbers are like +1 followed by digits.",
    "The equation 2+2=4 holds.",
    "Press 1 for sales, 2 for support.",
    "git@github.com is a host alias, not a mailbox here".replace("git@github.com", "git at github"),
    # Written after the rules above were settled, as a check on overfitting.
    "Call 911 now.",
    "The 2023-2024 season was long.",
    "Kernel 4.19.0-21-amd64 and 5.15.0.1034.",
    "Ref: 378282246310005 closed.",
    "GPS 48.8566 2.3522.",
    "ticket #123-45-6789",
    "EAN 4006381333931 on the box.",
    "iPhone 15 Pro 256GB",
    "ISO 8601: 2024-01-15T10:30:00Z",
    "handle @jane_doe",
    "Hex color #4155AA and #FFF",
    "ASN 13335 and port 443",
    "Lot 2024/01/15-0042 expired.",
    "Build 20240115.3 passed.",
    "sha1 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
    "See RFC 1918 and RFC 4193.",
    "PIN 1234 is weak.",
    "Pay 4000 EUR by 31.12.2024.",
    "The key is sk-test only",
    "12345-67890 and route 66 in the 1990s",
]
BLIND_POSITIVES: list[Case] = [
    ("Dial 123.456.7890 for help.", [("phone", "123.456.7890")]),
    ("Call +1-415-555-2671 now", [("phone", "+1-415-555-2671")]),
    ("Email me: JOHN.DOE@EXAMPLE.ORG", [("email", "JOHN.DOE@EXAMPLE.ORG")]),
    ("from 10.20.30.40 yesterday", [("ip_address", "10.20.30.40")]),
    ("Call me on 0800 123 4567", [("phone", "0800 123 4567")]),
    ("Phone: +49-89-636-48018", [("phone", "+49-89-636-48018")]),
]


def cases() -> list[Case]:
    out: list[Case] = []
    for i, value in enumerate(EMAILS):
        for k in (0, 2, 4):
            template = EMAIL_TEMPLATES[(i + k) % len(EMAIL_TEMPLATES)]
            out.append((template.format(value), [("email", value)]))
    for i, value in enumerate(PHONES):
        for template in (PHONE_TEMPLATES[i % 4], PHONE_TEMPLATES[(i + 2) % 4]):
            out.append((template.format(value), [("phone", value)]))
    out += [(text, [("phone", value)]) for text, value in BARE_PHONES]
    for i, value in enumerate(CARDS):
        for template in (CARD_TEMPLATES[i % 4], CARD_TEMPLATES[(i + 1) % 4]):
            out.append((template.format(value), [("credit_card", value)]))
    for i, value in enumerate(IBANS):
        for template in (IBAN_TEMPLATES[i % 3], IBAN_TEMPLATES[(i + 1) % 3]):
            out.append((template.format(value), [("iban", value)]))
    out += [(text, [("ssn", value)]) for text, value in SSNS]
    for i, value in enumerate(IPS):
        for template in (IP_TEMPLATES[i % 4], IP_TEMPLATES[(i + 1) % 4]):
            out.append((template.format(value), [("ip_address", value)]))
    out += [(text, [("ip_address", value)]) for text, value in IP_WITH_PORT]
    for value in API_KEYS:
        for template in KEY_TEMPLATES:
            out.append((template.format(value), [("api_key", value)]))
    out += [(text, [("aws_key", value)]) for text, value in AWS]
    for value in PRIVATE_KEYS:
        out.append((f"Here is the deploy key:\n{value}\nKeep it safe.", [("private_key", value)]))
    for value in JWTS:
        for template in JWT_TEMPLATES:
            out.append((template.format(value), [("jwt", value)]))
    # Several kinds in one text.
    out.append(
        (
            "Customer Jane (jane.doe@example.com, +44 20 7946 0958) paid with 5555 5555 5555 4444 "
            "from 10.1.2.3; her SSN is 123-45-6789 and IBAN GB29NWBK60161331926819.",
            [
                ("email", "jane.doe@example.com"),
                ("phone", "+44 20 7946 0958"),
                ("credit_card", "5555 5555 5555 4444"),
                ("ip_address", "10.1.2.3"),
                ("ssn", "123-45-6789"),
                ("iban", "GB29NWBK60161331926819"),
            ],
        )
    )
    out.append(
        (
            "On 2024-03-01 order #88231 (v1.4.2) went to ops@example.org from 192.168.10.5, key sk-abcdefghij0123456789KLMNOP.",
            [
                ("email", "ops@example.org"),
                ("ip_address", "192.168.10.5"),
                ("api_key", "sk-abcdefghij0123456789KLMNOP"),
            ],
        )
    )
    out += BLIND_POSITIVES
    out += [(text, []) for text in NEAR_MISSES]
    return out


# Values to stream in small chunks: each must be redacted even when split across chunks.
STREAM_VALUES: list[tuple[str, str]] = [
    *[("email", v) for v in EMAILS[:8]],
    *[("phone", v) for v in PHONES[:8]],
    *[("credit_card", v) for v in CARDS[:8]],
    *[("iban", v) for v in IBANS[:5]],
    ("ssn", "123-45-6789"),
    *[("ip_address", v) for v in IPS[:4]],
    *[("api_key", v) for v in API_KEYS[:4]],
    ("aws_key", "AKIAIOSFODNN7EXAMPLE"),
    ("private_key", PRIVATE_KEYS[0]),
    ("jwt", JWTS[0]),
]
