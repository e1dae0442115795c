"""The read side: results, recent votes, health, the live feed and page."""
