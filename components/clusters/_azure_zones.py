"""Which Azure regions have availability zones, so that zonal resources ask only where they can."""

from __future__ import annotations

# Source: Microsoft Learn, "Azure regions list" (articles/reliability/regions-list.md in
# MicrosoftDocs/reliability-docs, page dated 2025-09-23), column "Availability zone support",
# public Azure cloud only. Regions are added over time: a region missing here only means its
# cluster is built without zones, never that the build fails. Update this set when Microsoft adds
# zones to a region (the page above is the reference).
ZONED_REGIONS = frozenset(
    {
        "australiaeast",
        "austriaeast",
        "belgiumcentral",
        "brazilsouth",
        "canadacentral",
        "centralindia",
        "centralus",
        "chilecentral",
        "denmarkeast",
        "eastasia",
        "eastus",
        "eastus2",
        "francecentral",
        "germanywestcentral",
        "indonesiacentral",
        "israelcentral",
        "italynorth",
        "japaneast",
        "japanwest",
        "koreacentral",
        "malaysiawest",
        "mexicocentral",
        "newzealandnorth",
        "northeurope",
        "norwayeast",
        "polandcentral",
        "qatarcentral",
        "southafricanorth",
        "southcentralus",
        "southeastasia",
        "spaincentral",
        "swedencentral",
        "switzerlandnorth",
        "uaenorth",
        "uksouth",
        "westeurope",
        "westus2",
        "westus3",
    }
)
"""Programmatic names of the regions that offer availability zones 1, 2 and 3."""

ZONES = ("1", "2", "3")


def zones_for(region: str) -> list[str] | None:
    """The zones to spread zonal resources over in `region`, or None where it has none.

    None rather than an empty list: the property is then left out of the request, which is how
    Azure itself reports a non-zonal resource, so a refresh shows no difference.
    """
    return list(ZONES) if region.lower() in ZONED_REGIONS else None
