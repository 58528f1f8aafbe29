"""The one check of label values against a class table: raster values, vector values, ignore values, and a
message that names the values, their source and the fix."""

from __future__ import annotations

from collections import Counter

import pytest

from rsseg_cli.config import ClassSpec
from rsseg_cli.data.classes import ClassTable, check_label_values
from rsseg_cli.errors import UserError

TABLE = ClassTable.from_specs(
    [
        ClassSpec(id=0, name="water"),
        ClassSpec(id=1, name="forest", value=10),
        ClassSpec(id=2, name="urban", value="built"),
    ]
)
RASTER_TABLE = ClassTable.from_specs(
    [ClassSpec(id=0, name="water"), ClassSpec(id=1, name="forest", value=10)]
)


def test_known_and_ignored_values_pass():
    check_label_values(Counter({0: 5, 10: 3}), RASTER_TABLE, "the label raster a.tif")
    check_label_values([0, 10, 255], RASTER_TABLE, "the label raster a.tif", ignore_values=[255])
    check_label_values(["water", "10", "built", "0"], TABLE, "the vector labels l.gpkg")  # name, value, id
    check_label_values(["water", "cloud"], TABLE, "the vector labels l.gpkg", ignore_values=["cloud"])
    check_label_values([], TABLE, "nothing")


def test_raster_values_outside_the_table_are_named_with_source_counts_and_fix():
    with pytest.raises(UserError) as err:
        check_label_values(Counter({0: 5, 1: 7, 12: 2, 10: 1}), RASTER_TABLE, "the label raster a.tif")
    text = str(err.value)
    assert "Label values 1 (7 px), 12 (2 px) in the label raster a.tif are not in the class table" in text
    assert "water (0), forest (10)" in text  # the classes with the value each takes
    assert "'classes:' in a config file" in text and "tile.labels.ignore_values" in text


def test_a_raster_value_equal_to_a_class_id_with_another_value_is_unknown():
    # forest takes raster value 10, so the value 1 (its id) is not forest.
    with pytest.raises(UserError, match=r"Label values 1 in"):
        check_label_values([1], RASTER_TABLE, "the label raster a.tif")


def test_vector_values_outside_the_table():
    with pytest.raises(UserError) as err:
        check_label_values(
            Counter(["lava", "water", "lava", "ash"]), TABLE, "field 'class' of the vector labels l"
        )
    text = str(err.value)
    assert "Label values ash (1 feature), lava (2 features) in field 'class' of the vector labels l" in text
    assert "match no class by value, name or id" in text
    assert "tile.labels.ignore_values" in text


def test_values_are_listed_in_natural_order_and_capped():
    with pytest.raises(UserError) as err:
        check_label_values([str(v) for v in range(30, 2, -1)], TABLE, "the vector labels l")
    text = str(err.value)
    # "10" is forest's value; of the other 27, 20 are listed.
    assert "Label values 3, 4, 5, 6, 7, 8, 9, 11, 12," in text and "23 and 7 more in" in text


def test_the_table_name_and_fix_can_be_given():
    with pytest.raises(UserError) as err:
        check_label_values(
            [7],
            RASTER_TABLE,
            "the label raster a.tif",
            table_name="the class table of p.tif",
            fix="Recode it.",
        )
    assert "not in the class table of p.tif: water (0), forest (10). Recode it." in str(err.value)


def test_non_numeric_class_values_cannot_match_a_raster():
    with pytest.raises(UserError, match="non-numeric"):
        check_label_values([0], TABLE, "the label raster a.tif")
