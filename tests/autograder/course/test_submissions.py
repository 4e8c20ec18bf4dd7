"""Submissions from LMS downloads, folders, zips and nbgrader trees: placed by name and folder, bad files
listed with a reason, never followed or blocked on; what a job key covers."""

import json

import pytest

from autograder import files
from autograder.course import batch, submissions
from autograder.isolation import machine
from autograder.isolation.limits import Limits

NOTEBOOKS = {"01_chain_rule": "01_chain_rule", "02_sigmoid_saturation": "02_sigmoid_saturation"}


def test_lms_names_are_placed_and_the_rest_listed():
    names = ["smithjohn_12345_67890_01_chain_rule.ipynb", "jones_LATE_12346_67891_01_chain_rule-1.ipynb",
             "John Smith_123456_assignsubmission_file_/01_chain_rule.ipynb",
             "HW1_jdoe_attempt_2024-01-02-10-11-12_01_chain_rule.ipynb", "alice_01_chain_rule (2).ipynb",
             "01_chain_rule_bob.ipynb", "carol/02_sigmoid_saturation.ipynb", "honest_full_0_01_chain_rule.ipynb",
             "random.ipynb", "01_chain_rule.ipynb", "x_01_chain_rule_02_sigmoid_saturation.ipynb", "notes.txt",
             "a_01_chain_rule_b.ipynb", "dup_01_chain_rule.ipynb", "dup/01_chain_rule.ipynb"]
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    got = {(s.student, s.assignment) for s in placed}
    assert got == {("12345", "01_chain_rule"), ("12346", "01_chain_rule"), ("123456", "01_chain_rule"),
                   ("jdoe", "01_chain_rule"), ("alice", "01_chain_rule"), ("bob", "01_chain_rule"),
                   ("carol", "02_sigmoid_saturation"), ("honest_full_0", "01_chain_rule")}
    assert {u.where for u in unplaced} == {"random.ipynb", "01_chain_rule.ipynb", "notes.txt",
                                          "x_01_chain_rule_02_sigmoid_saturation.ipynb", "a_01_chain_rule_b.ipynb",
                                          "dup_01_chain_rule.ipynb", "dup/01_chain_rule.ipynb"}
    moodle = next(s for s in placed if s.student == "123456")
    assert moodle.name == "John Smith" and moodle.lms_user_id == "123456"


def test_nbgrader_tree_keeps_extra_files_out_of_the_notebooks(tmp_path):
    folder = tmp_path / "alice" / "01_chain_rule"
    folder.mkdir(parents=True)
    (folder / "01_chain_rule.ipynb").write_text("{}")
    (folder / "numpy.py").write_text("")
    (folder / "timestamp.txt").write_text("2024-01-01 10:00:00 UTC")
    placed, unplaced = submissions.discover(tmp_path, NOTEBOOKS)
    assert not unplaced and len(placed) == 1
    assert placed[0].extra_files == ["numpy.py"] and placed[0].timestamp.startswith("2024-01-01")


def _notebook_bytes() -> bytes:
    return json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_folder_layouts_list_links_fifos_folders_and_course_files(tmp_path):
    import os

    course, submitted = tmp_path / "course", tmp_path / "downloads"
    (course / "source").mkdir(parents=True)
    secret = course / "source" / "solution.ipynb"
    secret.write_bytes(_notebook_bytes())
    for student in ("alice", "bob", "carol", "dave", "erin"):
        (submitted / student).mkdir(parents=True)
    (submitted / "alice" / "01_chain_rule.ipynb").write_bytes(_notebook_bytes())
    (submitted / "bob" / "01_chain_rule.ipynb").symlink_to(secret)
    os.mkfifo(submitted / "carol" / "01_chain_rule.ipynb")
    (submitted / "dave" / "01_chain_rule.ipynb").mkdir()
    os.link(secret, submitted / "erin" / "01_chain_rule.ipynb")
    (submitted / "frank").symlink_to(submitted / "alice")  # a whole folder, linked
    placed, unplaced = submissions.discover(submitted, NOTEBOOKS, protected=[course])
    assert [(s.student, s.assignment) for s in placed] == [("alice", "01_chain_rule")]
    why = {u.where: u.why for u in unplaced}
    assert why == {"bob/01_chain_rule.ipynb": submissions.SYMLINK,
                   "carol/01_chain_rule.ipynb": submissions.NOT_REGULAR,
                   "dave/01_chain_rule.ipynb": submissions.A_FOLDER,
                   "erin/01_chain_rule.ipynb": submissions.COURSE_FILE, "frank": submissions.SYMLINK}


def test_an_nbgrader_tree_refuses_links_and_grades_despite_a_bad_timestamp(tmp_path):
    for student, stamp in (("alice", "9999-99-99 99:99:99"), ("bob", "2024-03-01 12:00:00 UTC"), ("carol", "")):
        folder = tmp_path / student / "01_chain_rule"
        folder.mkdir(parents=True)
        (folder / "01_chain_rule.ipynb").write_bytes(_notebook_bytes())
        (folder / "timestamp.txt").write_text(stamp)
    (tmp_path / "dave" / "01_chain_rule").mkdir(parents=True)
    (tmp_path / "dave" / "01_chain_rule" / "01_chain_rule.ipynb").symlink_to(
        tmp_path / "bob" / "01_chain_rule" / "01_chain_rule.ipynb")
    placed, unplaced = submissions.discover(tmp_path, NOTEBOOKS)
    by_student = {s.student: s for s in placed}
    assert set(by_student) == {"alice", "bob", "carol", "dave"}
    assert by_student["alice"].timestamp is None and "timestamp.txt unusable" in by_student["alice"].problems[0]
    assert by_student["bob"].timestamp == "2024-03-01 12:00:00 UTC" and not by_student["bob"].problems
    assert by_student["carol"].timestamp is None and not by_student["carol"].problems
    assert by_student["dave"].notebooks == {} and "symbolic link" in by_student["dave"].problems[0]
    assert {u.where for u in unplaced} == {"alice/01_chain_rule/timestamp.txt",
                                          "dave/01_chain_rule/01_chain_rule.ipynb"}


@pytest.mark.parametrize("text, ok", [("2024-01-01 10:00:00.123456 UTC", True), ("2024-01-01T10:00:00", True),
                                      ("9999-99-99 99:99:99", False), ("yesterday", False),
                                      ("2999-01-01 00:00:00", False), ("2024-02-30 10:00:00", False)])
def test_submission_times_are_read_as_nbgrader_reads_them(text, ok):
    value, why = submissions.submission_time(text)
    assert (value == text and why is None) if ok else (value is None and why)


def test_the_students_folder_decides_whose_a_file_is():
    names = ["alice/01_chain_rule.ipynb", "mallory/alice_01_chain_rule.ipynb",  # names another student: listed
             "mallory/02_sigmoid_saturation.ipynb", "bob/final_01_chain_rule.ipynb",  # "final" names nobody: bob's
             "Mallory M_9_assignsubmission_file_/Jane Doe_4567_assignsubmission_file_01_chain_rule.ipynb",
             "Jane Doe_4567_assignsubmission_file_/01_chain_rule (1).ipynb",
             "Carl C_8_assignsubmission_file_/carl_01_chain_rule.ipynb"]  # his own login in the name: his
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    got = {(s.student, next(iter(s.notebooks))): s.notebooks[next(iter(s.notebooks))]["path"] for s in placed}
    assert got == {("alice", "01_chain_rule"): names[0], ("mallory", "02_sigmoid_saturation"): names[2],
                   ("bob", "01_chain_rule"): names[3], ("4567", "01_chain_rule"): names[5],
                   ("8", "01_chain_rule"): names[6]}
    assert {u.where: u.why for u in unplaced} == {
        names[1]: "names student 'alice' but is in the folder of 'mallory': not graded for either",
        names[4]: "names student '4567' but is in the folder of '9': not graded for either"}
    jane = next(s for s in placed if s.student == "4567")
    assert (jane.first_name, jane.last_name, jane.lms_user_id) == ("Jane", "Doe", "4567")


def test_a_blackboard_name_with_an_impossible_time_is_graded_without_one_and_flagged():
    names = ["HW1_bb_attempt_2024-13-45-99-99-99_01_chain_rule.ipynb",
             "HW1_cc_attempt_2024-01-02-10-11-12_01_chain_rule.ipynb"]
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    by_student = {s.student: s for s in placed}
    assert by_student["bb"].timestamp is None and "submission time unusable" in by_student["bb"].problems[0]
    assert by_student["cc"].timestamp == "2024-01-02 10:11:12" and not by_student["cc"].problems
    assert [u.where for u in unplaced] == [names[0]] and "not a date" in unplaced[0].why


@pytest.mark.parametrize("names, students", [
    (["submissions/alice_01_chain_rule.ipynb", "submissions/bob_01_chain_rule.ipynb"], {"alice", "bob"}),
    (["submissions/alice/01_chain_rule.ipynb", "submissions/bob/01_chain_rule.ipynb"], {"alice", "bob"}),
    (["alice/01_chain_rule.ipynb", "alice/02_sigmoid_saturation.ipynb"], {"alice"}),  # one student's folder
    (["Ann Lee_7_assignsubmission_file_/01_chain_rule.ipynb"], {"7"}),
])
def test_a_wrapper_folder_is_not_a_student(names, students):
    placed, unplaced = submissions.place_flat([(n, {"path": n}) for n in names], NOTEBOOKS)
    assert {s.student for s in placed} == students and not unplaced


def _zip_with_bad_members(path):
    import stat
    import struct
    import zipfile

    good = _notebook_bytes()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("alice_01_chain_rule.ipynb", good)
        archive.writestr(zipfile.ZipInfo("crc_01_chain_rule.ipynb"), good * 20)
        archive.writestr("badXX_01_chain_rule.ipynb", good)
        archive.writestr("../evil_01_chain_rule.ipynb", good)
        link = zipfile.ZipInfo("link_01_chain_rule.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("Jos\u00e9 Ruiz_31_assignsubmission_file_01_chain_rule.ipynb", good)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("crc_01_chain_rule.ipynb")
        data[info.header_offset + 30 + len(info.filename) + 50] ^= 0xFF
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # mark the placeholder's name as UTF-8, then make it invalid UTF-8
        length, extra, comment = struct.unpack("<HHH", data[at + 28:at + 34])
        if data[at + 46:at + 46 + length].startswith(b"badXX"):
            data[at + 8:at + 10] = struct.pack("<H", struct.unpack("<H", data[at + 8:at + 10])[0] | 0x800)
        at = data.find(b"PK\x01\x02", at + 46 + length + extra + comment)
    path.write_bytes(bytes(data).replace(b"badXX", b"b\xff\xfeXX"))
    return path


def test_a_zip_with_bad_members_lists_them_and_places_the_rest(tmp_path):
    path = _zip_with_bad_members(tmp_path / "download.zip")
    placed, unplaced = submissions.discover(path, NOTEBOOKS)
    assert {s.student for s in placed} == {"alice", "31"}
    why = {u.where: u.why for u in unplaced}
    assert why["crc_01_chain_rule.ipynb"].startswith("corrupt in the zip (BadZipFile")
    assert why["../evil_01_chain_rule.ipynb"].startswith("an unsafe path")
    assert why["link_01_chain_rule.ipynb"] == submissions.SYMLINK
    assert any(w.startswith("its name is not valid UTF-8") for w in why.values()) and len(why) == 4
    jose = next(s for s in placed if s.student == "31")
    assert (jose.first_name, jose.last_name) == ("Jos\u00e9", "Ruiz")
    for submission in placed:  # the good members read through the same bad archive
        assert files.read_bytes(next(iter(submission.notebooks.values()))) == _notebook_bytes()
    with pytest.raises(files.UnreadableFile, match="CRC"):
        files.read_bytes({"zip": str(path), "member": "crc_01_chain_rule.ipynb", "index": 1})


def test_reading_a_submission_never_follows_a_link_nor_waits_on_a_fifo(tmp_path):
    import os

    (tmp_path / "real.ipynb").write_bytes(b"{}")
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "real.ipynb")
    os.mkfifo(tmp_path / "fifo.ipynb")
    for name in ("link.ipynb", "fifo.ipynb", "missing.ipynb"):
        with pytest.raises(files.UnreadableFile):
            files.read_bytes({"path": str(tmp_path / name)})
    submission = submissions.Submission("s", "01_chain_rule", {"01_chain_rule": {"path": str(tmp_path / "fifo.ipynb")}})
    sources = {"01_chain_rule": {"assignment": "01_chain_rule", "sha": "x"}}
    settings = batch.Batch(machine.probe(force_mode="none"), Limits(), [], tmp_path)
    assert len(settings.job_key(submission, sources, {})) == 64  # a key, not an exception
