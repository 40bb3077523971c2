from pathlib import Path

import pytest

from taskschema._files import contract_files

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def touch(root: Path, *names: str) -> list[Path]:
    paths = [root / name for name in names]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}", "utf-8")
    return paths


def test_single_file_is_returned_as_given(tmp_path: Path) -> None:
    [contract] = touch(tmp_path, "orders/process_order.json")
    assert contract_files([contract]) == [contract]


def test_explicit_file_is_kept_whatever_its_name(tmp_path: Path) -> None:
    files = touch(tmp_path, "shared.schema.json", "notes.txt")
    assert contract_files(files) == files


def test_folder_is_searched_recursively_and_sorted(tmp_path: Path) -> None:
    touch(tmp_path, "b.json", "a/z.json", "a/b/c.json", "c/deep/er/x.json", "aa.json")
    assert contract_files([tmp_path]) == [
        tmp_path / "a/b/c.json",
        tmp_path / "a/z.json",
        tmp_path / "aa.json",
        tmp_path / "b.json",
        tmp_path / "c/deep/er/x.json",
    ]


def test_folder_search_skips_schema_files_and_other_extensions(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "task.json",
        "task-contract.schema.json",
        "nested/shared.schema.json",
        "nested/readme.md",
        "nested/data.json5",
        "nested/ok.json",
    )
    (tmp_path / "folder.json").mkdir()
    touch(tmp_path, "folder.json/inside.json")
    assert contract_files([tmp_path]) == [
        tmp_path / "folder.json/inside.json",
        tmp_path / "nested/ok.json",
        tmp_path / "task.json",
    ]


def test_several_inputs_keep_their_given_order(tmp_path: Path) -> None:
    [single] = touch(tmp_path, "z/single.json")
    touch(tmp_path, "a/one.json", "a/two.json")
    assert contract_files([single, tmp_path / "a"]) == [
        single,
        tmp_path / "a/one.json",
        tmp_path / "a/two.json",
    ]


def test_empty_folder_gives_no_files(tmp_path: Path) -> None:
    assert contract_files([tmp_path]) == []
    assert contract_files([]) == []


@pytest.mark.parametrize("missing", ["nope.json", "no/such/folder"])
def test_missing_path_raises_file_not_found(tmp_path: Path, missing: str) -> None:
    [present] = touch(tmp_path, "present.json")
    with pytest.raises(FileNotFoundError, match="no such file or folder") as info:
        contract_files([present, tmp_path / missing])
    assert missing in str(info.value)


def test_bundled_examples_exclude_the_meta_schema() -> None:
    found = contract_files([SCHEMAS])
    assert [path.relative_to(SCHEMAS).as_posix() for path in found] == [
        "shop/notifications/notify_order_status.json",
        "shop/notifications/schedule_digest.json",
        "shop/notifications/send_email.json",
        "shop/notifications/send_sms.json",
        "shop/orders/bulk_import.json",
        "shop/orders/cancel_order.json",
        "shop/orders/get_order_status.json",
        "shop/orders/process_order.json",
        "shop/orders/refund_payment.json",
    ]
