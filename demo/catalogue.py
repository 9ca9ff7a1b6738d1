"""The demo catalogue: who sells what, who buys it and where it goes, and how supplier orders move.

Only data lives here: the shops, their AliExpress suppliers and products, customers' names and addresses by
country, and the weighted tables that `demo.generator` draws from. Change any of it and every ``seed`` gives
different data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db.models import CancellationReason, SupplierOrderStatus

S = SupplierOrderStatus


# ---------------------------------------------------------------------------------------------------------------
# Catalogue: who sells what, who buys it and where it goes.


@dataclass(frozen=True)
class Product:
    title: str
    code: str
    price: str
    options: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class SupplierProfile:
    name: str
    store_id: str
    origin: str
    products: tuple[Product, ...]
    accepts_returns: bool = False
    return_window_days: int = 0


@dataclass(frozen=True)
class Country:
    code: str
    # city, province, postcode pattern ('#' a digit, '@' a letter), phone area code
    cities: tuple[tuple[str, str, str, str], ...]
    streets: tuple[str, ...]
    street_format: str
    phone: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    email_domains: tuple[str, ...]


@dataclass(frozen=True)
class ShopProfile:
    name: str
    currency: str
    email: str
    share: float
    return_address: dict[str, str]
    countries: tuple[tuple[str, int], ...]
    free_shipping_over: int
    shipping_rates: tuple[int, ...]
    suppliers: tuple[SupplierProfile, ...]


_COLORS = ("Black", "White", "Navy", "Olive", "Beige", "Grey")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_SHOE_SIZES = ("US 6", "US 7", "US 8", "US 9", "US 10", "US 11")

_OUTFITTERS_SUPPLIERS = (
    SupplierProfile(
        "Guangzhou Lanyi Apparel Store",
        "1102875431",
        "Guangzhou, CN",
        (
            Product("Oversized Cotton Crew Neck T-Shirt", "LY-TEE", "19.99", (_COLORS, _SIZES)),
            Product("Heavyweight Fleece Pullover Hoodie", "LY-HOOD", "44.99", (_COLORS[:4], _SIZES[1:])),
            Product(
                "Linen Button-Down Summer Shirt", "LY-LIN", "34.99", (("White", "Sand", "Sky Blue"), _SIZES)
            ),
            Product(
                "High-Waist Wide Leg Cargo Pants", "LY-CRG", "39.99", (("Khaki", "Black", "Olive"), _SIZES)
            ),
            Product(
                "Ribbed Knit Cropped Cardigan", "LY-CARD", "29.99", (("Cream", "Sage", "Lilac"), _SIZES[:4])
            ),
        ),
    ),
    SupplierProfile(
        "Yiwu Brightstar Accessories Store",
        "1100493276",
        "Yiwu, CN",
        (
            Product(
                "Polarized Retro Square Sunglasses",
                "BS-SUN",
                "24.99",
                (("Black Frame / Grey Lens", "Tortoise / Brown Lens", "Gold / Green Lens"),),
            ),
            Product(
                "Minimalist Stainless Steel Watch", "BS-WAT", "49.99", (("Silver", "Gold", "Rose Gold"),)
            ),
            Product("Genuine Leather Slim Card Wallet", "BS-WAL", "19.99", (("Black", "Brown", "Tan"),)),
            Product("Canvas Crossbody Sling Bag", "BS-SLG", "27.99", (("Black", "Khaki", "Army Green"),)),
            Product("Chunky Knit Beanie Hat", "BS-BEA", "14.99", (_COLORS,)),
        ),
    ),
    SupplierProfile(
        "Jinjiang Stride Footwear Factory Store",
        "1101638820",
        "Jinjiang, CN",
        (
            Product(
                "Breathable Mesh Running Sneakers",
                "ST-RUN",
                "54.99",
                (("Black", "White", "Grey"), _SHOE_SIZES),
            ),
            Product("Chunky Platform Canvas Sneakers", "ST-PLT", "49.99", (("White", "Black"), _SHOE_SIZES)),
            Product("Waterproof Chelsea Ankle Boots", "ST-CHB", "69.99", (("Black", "Brown"), _SHOE_SIZES)),
            Product(
                "Memory Foam Slide Sandals", "ST-SLD", "21.99", (("Black", "Beige", "Pink"), _SHOE_SIZES)
            ),
        ),
    ),
    SupplierProfile(
        "Hangzhou Silkmoon Fashion Store",
        "1102214906",
        "Hangzhou, CN",
        (
            Product(
                "Floral Print Midi Wrap Dress", "SM-WRP", "45.99", (("Blue Floral", "Red Floral"), _SIZES[:5])
            ),
            Product(
                "Pleated Satin Midi Skirt", "SM-SKT", "32.99", (("Champagne", "Emerald", "Black"), _SIZES[:5])
            ),
            Product("Mulberry Silk Square Scarf", "SM-SCF", "26.99", (("Paisley", "Leopard", "Polka Dot"),)),
            Product("Silk Scrunchie Set (6 pcs)", "SM-SCR", "12.99"),
        ),
        accepts_returns=True,
        return_window_days=15,
    ),
)

_GADGETS_SUPPLIERS = (
    SupplierProfile(
        "Shenzhen Voltcore Digital Store",
        "1101957732",
        "Shenzhen, CN",
        (
            Product(
                "65W GaN USB-C Fast Charger", "VC-GAN", "29.99", (("EU Plug", "UK Plug"), ("White", "Black"))
            ),
            Product(
                "Magnetic Wireless Power Bank 10000mAh", "VC-PWB", "34.99", (("White", "Purple", "Blue"),)
            ),
            Product("Braided USB-C to USB-C Cable", "VC-CBL", "9.99", (("1 m", "2 m", "3 m"),)),
            Product("3-in-1 Wireless Charging Stand", "VC-STD", "39.99", (("Black", "White"),)),
        ),
    ),
    SupplierProfile(
        "Soundwave Audio Official Store",
        "1102331058",
        "Shenzhen, CN",
        (
            Product("True Wireless ANC Earbuds", "SW-ANC", "49.99", (("Black", "White"),)),
            Product(
                "Bluetooth 5.3 Over-Ear Headphones",
                "SW-OVR",
                "59.99",
                (("Black", "Silver", "Midnight Blue"),),
            ),
            Product("Portable Waterproof Bluetooth Speaker", "SW-SPK", "39.99", (("Black", "Red", "Teal"),)),
            Product("Wireless Clip-On Lavalier Microphone", "SW-MIC", "19.99", (("USB-C", "Lightning"),)),
        ),
    ),
    SupplierProfile(
        "Lumio Smart Home Store",
        "1100782645",
        "Dongguan, CN",
        (
            Product("Wi-Fi Smart Plug (4-pack)", "LM-PLG", "24.99", (("EU Type F", "UK Type G"),)),
            Product("RGB LED Strip Light", "LM-LED", "19.99", (("5 m", "10 m", "20 m"),)),
            Product("1080p Indoor Security Camera", "LM-CAM", "32.99", (("White",),)),
            Product("Smart Door and Window Sensor", "LM-SNS", "12.99"),
        ),
    ),
    SupplierProfile(
        "Dongguan Gearlab Accessories Store",
        "1101120487",
        "Dongguan, CN",
        (
            Product("Aluminium Adjustable Laptop Stand", "GL-STD", "29.99", (("Silver", "Space Grey"),)),
            Product("75% Hot-Swap Mechanical Keyboard", "GL-KBD", "69.99", (("Red Switch", "Brown Switch"),)),
            Product("Ergonomic Vertical Wireless Mouse", "GL-MSE", "24.99", (("Black", "Grey"),)),
            Product(
                "Tempered Glass Screen Protector (2 pcs)", "GL-GLS", "8.99", (("iPhone 15", "iPhone 16"),)
            ),
            Product("Magnetic Clear Phone Case", "GL-CSE", "14.99", (("iPhone 15", "iPhone 16", "Pixel 9"),)),
        ),
        accepts_returns=True,
        return_window_days=30,
    ),
)


def _words(text: str) -> tuple[str, ...]:
    """A comma-separated list, so that the name tables stay readable."""
    return tuple(text.split(", "))


def _cities(text: str) -> tuple[tuple[str, str, str, str], ...]:
    """'City / province / postcode pattern / phone area; ...' rows."""
    rows = []
    for row in text.split("; "):
        city, province, postcode, area = row.split(" / ")
        rows.append((city, province, postcode, area))
    return tuple(rows)


_EN_FIRST = _words(
    "James, Olivia, Liam, Emma, Noah, Ava, Ethan, Sophia, Mason, Isabella, Lucas, Mia, Logan, Amelia, Jackson, "
    "Harper, Aiden, Evelyn, Elijah, Abigail, Grace, Chloe, Daniel, Zoe, Priya, Mateo, Aaliyah, Hiroshi, Fatima, "
    "Diego, Siobhan, Wei"
)
_EN_LAST = _words(
    "Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, Hernandez, Lopez, "
    "Wilson, Anderson, Thomas, Taylor, Moore, Jackson, Martin, Lee, Nguyen, Patel, Kim, O'Connor, Walker, Hall, "
    "Young, Allen, Wright, Scott, Chen, Okafor"
)
_EN_DOMAINS = _words("gmail.com, gmail.com, outlook.com, yahoo.com, icloud.com, hotmail.com")
_EN_STREETS = _words(
    "Maple Street, Oak Avenue, Cedar Lane, Park Road, Elm Street, Lakeview Drive, Hillcrest Road, "
    "Washington Avenue, Willow Court, Pine Street, Station Road, High Street, Church Lane"
)
_US_CA_PHONE = "+1 {area}-555-01##"  # 555-0100 to 555-0199 are reserved for fiction

COUNTRIES = {
    country.code: country
    for country in (
        Country(
            "US",
            _cities(
                "Austin / TX / 787## / 512; Portland / OR / 972## / 503; Brooklyn / NY / 112## / 718; "
                "Denver / CO / 802## / 303; Seattle / WA / 981## / 206; Chicago / IL / 606## / 312; "
                "San Diego / CA / 921## / 619; Miami / FL / 331## / 305; Atlanta / GA / 303## / 404; "
                "Minneapolis / MN / 554## / 612; Nashville / TN / 372## / 615"
            ),
            _EN_STREETS,
            "{number} {street}",
            _US_CA_PHONE,
            _EN_FIRST,
            _EN_LAST,
            _EN_DOMAINS,
        ),
        Country(
            "CA",
            _cities(
                "Toronto / ON / M5V #@# / 416; Vancouver / BC / V6B #@# / 604; Montréal / QC / H2X #@# / 514; "
                "Calgary / AB / T2P #@# / 403"
            ),
            _EN_STREETS,
            "{number} {street}",
            _US_CA_PHONE,
            _EN_FIRST,
            _EN_LAST,
            _EN_DOMAINS,
        ),
        Country(
            "GB",
            _cities(
                "London / England / SW1A #@@ / ; Manchester / England / M1 #@@ / ; "
                "Edinburgh / Scotland / EH1 #@@ / ; Bristol / England / BS1 #@@ / "
            ),
            _EN_STREETS,
            "{number} {street}",
            "+44 7700 900###",  # reserved for drama
            _EN_FIRST,
            _EN_LAST,
            (*_EN_DOMAINS, "btinternet.com"),
        ),
        Country(
            "AU",
            _cities(
                "Sydney / NSW / 20## / ; Melbourne / VIC / 30## / ; Brisbane / QLD / 40## / ; Perth / WA / 60## / "
            ),
            _EN_STREETS,
            "{number} {street}",
            "+61 491 570 ###",  # reserved for fiction
            _EN_FIRST,
            _EN_LAST,
            (*_EN_DOMAINS, "bigpond.com"),
        ),
        Country(
            "DE",
            _cities(
                "Berlin / Berlin / 10### / ; München / Bayern / 80### / ; Hamburg / Hamburg / 20### / ; "
                "Köln / Nordrhein-Westfalen / 50### / ; Frankfurt am Main / Hessen / 60### / ; "
                "Leipzig / Sachsen / 04### / "
            ),
            _words("Hauptstraße, Bahnhofstraße, Gartenweg, Lindenallee, Schillerstraße, Goethestraße"),
            "{street} {number}",
            "+49 151 ########",
            _words("Lukas, Leon, Finn, Jonas, Paul, Felix, Emma, Mia, Hannah, Lea, Sophie, Jürgen"),
            _words("Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Koch"),
            _words("gmx.de, web.de, gmail.com, t-online.de"),
        ),
        Country(
            "FR",
            _cities(
                "Paris / Île-de-France / 75### / ; Lyon / Auvergne-Rhône-Alpes / 690## / ; "
                "Marseille / Provence-Alpes-Côte d'Azur / 130## / ; Toulouse / Occitanie / 310## / ; "
                "Bordeaux / Nouvelle-Aquitaine / 330## / ; Nantes / Pays de la Loire / 440## / "
            ),
            _words(
                "rue de la République, avenue Victor Hugo, boulevard Voltaire, rue des Lilas, rue du Moulin"
            ),
            "{number} {street}",
            "+33 6 ## ## ## ##",
            _words("Louis, Gabriel, Jules, Hugo, Léa, Chloé, Manon, Camille, Inès, Théo, Élodie"),
            _words("Martin, Bernard, Dubois, Thomas, Robert, Petit, Durand, Leroy, Moreau, Lefèvre"),
            _words("orange.fr, free.fr, gmail.com, laposte.net"),
        ),
        Country(
            "ES",
            _cities(
                "Madrid / Madrid / 280## / ; Barcelona / Barcelona / 080## / ; Valencia / Valencia / 460## / ; "
                "Sevilla / Sevilla / 410## / ; Bilbao / Bizkaia / 480## / "
            ),
            _words(
                "Calle Mayor, Avenida de la Constitución, Calle del Sol, Paseo de Gracia, Calle de Alcalá"
            ),
            "{street}, {number}",
            "+34 6## ### ###",
            _words("Hugo, Martín, Lucas, Mateo, Lucía, Sofía, María, Paula, Álvaro, Javier, Carmen"),
            _words("García, Fernández, González, Rodríguez, López, Sánchez, Pérez, Gómez, Ruiz, Díaz"),
            _words("gmail.com, hotmail.es, yahoo.es, outlook.es"),
        ),
        Country(
            "IT",
            _cities(
                "Milano / MI / 201## / ; Roma / RM / 001## / ; Torino / TO / 101## / ; Bologna / BO / 401## / ; "
                "Firenze / FI / 501## / "
            ),
            _words("Via Roma, Corso Garibaldi, Via Dante, Via Giuseppe Verdi, Viale Europa"),
            "{street} {number}",
            "+39 3## ### ####",
            _words("Leonardo, Francesco, Lorenzo, Sofia, Giulia, Aurora, Alice, Matteo, Chiara, Niccolò"),
            _words("Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Greco, Bruno"),
            _words("libero.it, gmail.com, virgilio.it, hotmail.it"),
        ),
        Country(
            "NL",
            _cities(
                "Amsterdam / Noord-Holland / 10## @@ / ; Rotterdam / Zuid-Holland / 30## @@ / ; "
                "Utrecht / Utrecht / 35## @@ / ; Eindhoven / Noord-Brabant / 56## @@ / "
            ),
            _words("Keizersgracht, Prinsengracht, Dorpsstraat, Kerkstraat, Molenweg"),
            "{street} {number}",
            "+31 6 ########",
            _words("Daan, Sem, Lucas, Levi, Julia, Emma, Tess, Sophie, Fenna, Bram, Anouk, Joris"),
            _words("de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Visser, Smit, Meijer"),
            _words("gmail.com, ziggo.nl, hotmail.nl, kpnmail.nl"),
        ),
    )
}

DEMO_SHOPS: tuple[ShopProfile, ...] = (
    ShopProfile(
        name="Demo Outfitters",
        currency="USD",
        email="support@demo-outfitters.example",
        share=0.6,
        return_address={
            "name": "Demo Outfitters Returns",
            "address1": "1450 Commerce Way, Unit 7",
            "city": "Reno",
            "province": "NV",
            "zip": "89502",
            "country_code": "US",
        },
        countries=(("US", 70), ("CA", 12), ("GB", 10), ("AU", 8)),
        free_shipping_over=7500,
        shipping_rates=(499, 599, 799),
        suppliers=_OUTFITTERS_SUPPLIERS,
    ),
    ShopProfile(
        name="Demo Gadgets",
        currency="EUR",
        email="hallo@demo-gadgets.example",
        share=0.4,
        return_address={
            "name": "Demo Gadgets Retouren",
            "address1": "Lagerstraße 12",
            "city": "Hamburg",
            "province": "Hamburg",
            "zip": "20457",
            "country_code": "DE",
        },
        countries=(("DE", 35), ("FR", 25), ("ES", 15), ("IT", 15), ("NL", 10)),
        free_shipping_over=5000,
        shipping_rates=(390, 490, 690),
        suppliers=_GADGETS_SUPPLIERS,
    ),
)

TAGS = _words(
    "vip, gift, repeat-customer, priority, influencer, wholesale, black-friday, tiktok, instagram, fragile"
)
NOTES = (
    "Please leave the parcel with a neighbour if I'm not home.",
    "It's a gift, please don't include the invoice.",
    "Can you ship this together with my previous order?",
    "Customer asked twice about delivery times by email.",
    "Wrong size last time, double-check the variant.",
    "Ring the bell twice, the buzzer is broken.",
)

# ---------------------------------------------------------------------------------------------------------------
# How supplier orders move: statuses by order age, end reasons, carriers and parcel scans.

_STATUS_BY_AGE: tuple[tuple[float, tuple[tuple[SupplierOrderStatus, int], ...]], ...] = (
    (
        1.0,
        (
            (S.PLACE_ORDER_SUCCESS, 12),
            (S.PAYMENT_PROCESSING, 8),
            (S.RISK_CONTROL, 4),
            (S.WAIT_SELLER_EXAMINE_MONEY, 12),
            (S.WAIT_SELLER_SEND_GOODS, 60),
            (S.IN_CANCEL, 4),
        ),
    ),
    (
        6.0,
        (
            (S.RISK_CONTROL, 1),
            (S.WAIT_SELLER_SEND_GOODS, 45),
            (S.SELLER_PART_SEND_GOODS, 10),
            (S.WAIT_BUYER_ACCEPT_GOODS, 30),
            (S.IN_CANCEL, 5),
            (S.IN_FROZEN, 2),
            (S.FINISH, 7),
        ),
    ),
    (
        30.0,
        (
            (S.SELLER_PART_SEND_GOODS, 4),
            (S.WAIT_BUYER_ACCEPT_GOODS, 58),
            (S.FUND_PROCESSING, 8),
            (S.IN_ISSUE, 6),
            (S.IN_FROZEN, 2),
            (S.IN_CANCEL, 2),
            (S.FINISH, 20),
        ),
    ),
    (
        float("inf"),
        (
            (S.WAIT_BUYER_ACCEPT_GOODS, 5),
            (S.FUND_PROCESSING, 4),
            (S.IN_ISSUE, 4),
            (S.IN_FROZEN, 1),
            (S.FINISH, 86),
        ),
    ),
)

# Newest first: when every status must appear, the youngest of the chosen orders gets the earliest status.
LIFECYCLE = (
    S.PLACE_ORDER_SUCCESS,
    S.PAYMENT_PROCESSING,
    S.RISK_CONTROL,
    S.WAIT_SELLER_EXAMINE_MONEY,
    S.WAIT_SELLER_SEND_GOODS,
    S.IN_CANCEL,
    S.SELLER_PART_SEND_GOODS,
    S.IN_FROZEN,
    S.WAIT_BUYER_ACCEPT_GOODS,
    S.IN_ISSUE,
    S.FUND_PROCESSING,
    S.FINISH,
)
PAID = frozenset(
    {
        S.WAIT_SELLER_EXAMINE_MONEY,
        S.WAIT_SELLER_SEND_GOODS,
        S.SELLER_PART_SEND_GOODS,
        S.WAIT_BUYER_ACCEPT_GOODS,
        S.FUND_PROCESSING,
        S.IN_CANCEL,
        S.IN_ISSUE,
        S.IN_FROZEN,
    }
)
SHIPPED = frozenset({S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING})
STATUS_EVENTS = frozenset({S.RISK_CONTROL, S.IN_CANCEL, S.IN_ISSUE, S.IN_FROZEN, S.FUND_PROCESSING})
_ACCEPT_REASONS = (("buyer_accept_goods", 85), ("buyer_accept_goods_timeout", 15))
_CANCEL_REASONS = (
    ("cancel_order_close_trade", 70),
    ("seller_send_goods_timeout", 20),
    ("buyer_cancel_notpay_order", 10),
)
CANCEL_END_REASONS = frozenset(reason for reason, _ in _CANCEL_REASONS)
UNPAID_CANCEL = "buyer_cancel_notpay_order"

_CARRIERS = (
    ("AliExpress Standard Shipping", "LP", 55),
    ("YunExpress", "YT", 28),
    ("China Post Registered Air Mail", "S10", 17),
)
TRANSIT = (
    ("INFO_RECEIVED", "{origin}", "Shipment information received by the carrier"),
    ("IN_TRANSIT", "{origin}", "Accepted at the sorting center"),
    ("IN_TRANSIT", "{origin}", "Departed from the sorting center"),
    ("IN_TRANSIT", "Hong Kong, HK", "Export customs clearance completed"),
    ("IN_TRANSIT", "Hong Kong, HK", "Departed from the origin airport"),
    ("IN_TRANSIT", "{country}", "Arrived in the destination country"),
    ("IN_TRANSIT", "{country}", "Import customs clearance completed"),
    ("OUT_FOR_DELIVERY", "{city}", "Out for delivery"),
)
DELIVERED = ("DELIVERED", "{city}", "Delivered to the recipient")
EXCEPTIONS = (
    ("EXCEPTION", "{city}", "Delivery attempt failed: recipient not available"),
    ("EXCEPTION", "{country}", "Held by customs: additional information required"),
    ("EXCEPTION", "{city}", "Parcel damaged in transit, returned to the local depot"),
)

# ---------------------------------------------------------------------------------------------------------------
# Cancellation requests: every IN_CANCEL supplier order is waiting on one, as the domain requires.

R = CancellationReason
_CANCELLATION_REASONS: tuple[tuple[CancellationReason, int, tuple[str, ...]], ...] = (
    (
        R.CUSTOMER_CANCELLED,
        34,
        (
            "The customer cancelled a few hours after paying. Please don't ship this order and refund us.",
            "Our customer changed their mind and asked for a refund. Please cancel before it ships.",
        ),
    ),
    (
        R.CHANGE_SHIPPING_ADDRESS,
        14,
        (
            "The customer gave us the wrong address. We'll place a new order with the right one, please cancel "
            "this one.",
            "The customer is moving next week, so we'll reorder to the new address. Please cancel this order.",
        ),
    ),
    (
        R.WRONG_PRODUCT_ORDERED,
        12,
        (
            "We ordered the wrong size by mistake. Please cancel, we'll reorder the correct variant today.",
            "Wrong colour ordered on our side, sorry. Please cancel so that we can reorder.",
        ),
    ),
    (
        R.DUPLICATE_ORDER,
        10,
        (
            "Our store import placed this order twice. Please cancel this duplicate, the other one is fine.",
            "This duplicates an earlier order for the same customer; please cancel this one only.",
        ),
    ),
    (
        R.SUPPLIER_OUT_OF_STOCK,
        10,
        (
            "Your customer service told us this item is out of stock. Please cancel and refund.",
            "The listing shows this variant as sold out now; we'd rather cancel than wait for a restock.",
        ),
    ),
    (
        R.CANNOT_CONTACT_SUPPLIER,
        6,
        (
            "We asked about the dispatch date three times in chat without an answer. Please cancel.",
            "No reply to our messages for several days, so we would rather cancel this order.",
        ),
    ),
    (
        R.SUPPLIER_REFUSES_TO_SHIP,
        4,
        (
            "You asked us to pay extra shipping before sending. We don't agree to that, please cancel.",
            "The store says it can no longer ship to this country; please cancel and refund.",
        ),
    ),
    (
        R.OTHER,
        10,
        (
            "Our payment provider flagged the customer's payment as fraudulent. Please cancel before shipping.",
            "Import rules for this destination changed and the parcel would be held; we need to cancel.",
        ),
    ),
)
SUPPLIER_QUESTIONS = (
    "Hello friend, the goods are already packed. Can you tell us why you want to cancel? Maybe we can change "
    "the colour or size for you.",
    "Dear buyer, we can ship within 24 hours. Please confirm you still want to cancel, or send the new address "
    "and we will update it.",
    "Hi, please send a screenshot of the problem so that we can check it with our warehouse.",
    "We checked again and the item is in stock now. Do you still want to cancel?",
)
INFO_REQUESTED_SHARE = 0.15


# ---------------------------------------------------------------------------------------------------------------
# Weighted tables: values with running totals, for a weighted draw by bisection.


def cumulative(weighted: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    """The values and their running weight totals, so that one draw is a single bisection."""
    values, totals, running = [], [], 0
    for value, weight in weighted:
        running += weight
        values.append(value)
        totals.append(running)
    return values, totals


STATUS_TABLES = [(age, cumulative(weights)) for age, weights in _STATUS_BY_AGE]
ACCEPT_TABLE = cumulative(_ACCEPT_REASONS)
CANCEL_TABLE = cumulative(_CANCEL_REASONS)
CARRIER_TABLE = cumulative([((name, kind), weight) for name, kind, weight in _CARRIERS])
LINE_COUNTS = cumulative([(1, 40), (2, 28), (3, 17), (4, 10), (5, 5)])
SPLITS = cumulative([(1, 50), (2, 35), (3, 15)])
QUANTITIES = cumulative([(1, 72), (2, 19), (3, 6), (4, 3)])
TAG_COUNTS = cumulative([(0, 55), (1, 30), (2, 12), (3, 3)])
REASON_TABLE = cumulative([((reason, texts), weight) for reason, weight, texts in _CANCELLATION_REASONS])
