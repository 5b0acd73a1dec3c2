"""Countries and the other names they go by in English text: short and official names ("U.S." and "United
States", "PRC" and "China"), used by the resolver's ``country name`` rule (and to keep ``spelling`` from
taking "Germans" for "Germany"). Demonyms ("Canadian") are left
out on purpose: Re-DocRED keeps them apart from their country more often than not (116 of 187 documents
that name both), so merging them lost more precision than it gained recall (docs/kg.md). One line a
country: its name, then its other names (if any), separated by "|".
"""

from __future__ import annotations

_TABLE = """
China|People's Republic of China|PRC
Czech Republic|Czechia
France|French Republic
Germany|Federal Republic of Germany
Greece|Hellenic Republic
India|Republic of India
Iran|Islamic Republic of Iran|Persia
Ireland|Republic of Ireland|Eire
Israel|State of Israel
Italy|Italian Republic
Myanmar|Burma
Netherlands|Holland|The Netherlands
North Korea|DPRK|Democratic People's Republic of Korea
Russia|Russian Federation
South Korea|Republic of Korea|ROK
Soviet Union|USSR|U.S.S.R.|Union of Soviet Socialist Republics
Thailand|Kingdom of Thailand|Siam
Turkey|Türkiye|Republic of Turkey
United Arab Emirates|UAE|U.A.E.
United Kingdom|UK|U.K.|Britain|Great Britain|United Kingdom of Great Britain and Northern Ireland
United States|US|U.S.|USA|U.S.A.|United States of America|America
Vietnam|Viet Nam
Afghanistan
Albania
Algeria
Argentina
Armenia
Australia
Austria
Azerbaijan
Bangladesh
Belarus
Belgium
Bolivia
Bosnia and Herzegovina
Brazil
Bulgaria
Cambodia
Cameroon
Canada
Chile
Colombia
Croatia
Cuba
Cyprus
Denmark
Ecuador
Egypt
England
Estonia
Ethiopia
Finland
Georgia
Ghana
Hungary
Iceland
Indonesia
Iraq
Jamaica
Japan
Jordan
Kazakhstan
Kenya
Latvia
Lebanon
Libya
Lithuania
Luxembourg
Malaysia
Mexico
Mongolia
Morocco
Nepal
New Zealand
Nigeria
Norway
Pakistan
Peru
Philippines
Poland
Portugal
Romania
Saudi Arabia
Scotland
Serbia
Singapore
Slovakia
Slovenia
South Africa
Spain
Sri Lanka
Sweden
Switzerland
Syria
Taiwan
Tunisia
Ukraine
Uruguay
Venezuela
Wales
"""

COUNTRY_NAMES: dict[str, tuple[str, ...]] = {
    parts[0]: tuple(parts[1:]) for parts in (line.split("|") for line in _TABLE.strip().splitlines())
}
"""Country name -> its other names."""
