"""De-identification: which DICOM attributes identify a patient.

PS3.15 Annex E, the Basic Application Level Confidentiality Profile. Identifying
attributes are kept apart from the metadata shown, and are never shown or written unless
the user asks for them.
"""

from __future__ import annotations

from core.studies.study import library_errors

# The attributes most likely to identify a patient.
IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientIDsSequence",
        "OtherPatientNames", "PatientBirthDate", "PatientBirthTime", "PatientBirthName",
        "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
        "MedicalRecordLocator", "PatientAge", "PatientSex", "PatientSize", "PatientWeight",
        "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
        "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
        "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
        "ReferringPhysicianName", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
        "RequestingPhysician", "AccessionNumber", "StudyID", "StudyDate", "SeriesDate",
        "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime",
        "ContentTime", "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
        "StationName", "DeviceSerialNumber", "StudyInstanceUID", "SeriesInstanceUID",
        "SOPInstanceUID", "MediaStorageSOPInstanceUID", "FrameOfReferenceUID",
        "StudyDescription", "SeriesDescription", "RequestedProcedureDescription",
        "PerformedProcedureStepDescription", "ProtocolName", "ImageComments",
        "IssuerOfPatientID", "PatientInsurancePlanCodeSequence", "ResponsiblePerson",
        "ResponsibleOrganization", "ScheduledPerformingPhysicianName",
    }
)

# UIDs that describe the kind of object, not the patient: safe to show.
TECHNICAL_UIDS = frozenset({"SOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
                            "ImplementationClassUID", "ReferencedSOPClassUID"})



def is_identifying(elem) -> bool:
    """PS3.15 Basic Profile, conservatively: named attributes, person names, dates and
    instance UIDs (they link a file to a patient's record)."""
    return identifying_kind(elem.keyword or "", elem.VR)


def identifying_kind(keyword: str, vr: str | None) -> bool:
    """`is_identifying` from an attribute's keyword and VR alone."""
    if keyword in IDENTIFYING_KEYWORDS or vr in ("PN", "DA", "DT"):
        return True
    return vr == "UI" and keyword not in TECHNICAL_UIDS


def identifying(ds) -> dict[str, str]:
    """Identifying attributes, for showing only when the user asks.

    Only those are read: the others (the pixel data among them) stay as the parser left
    them, and one that cannot be read (an unknown VR, a value of the wrong length) is
    left out rather than failing the study."""
    found: dict[str, str] = {}
    _collect(ds, found)
    return found


def _collect(ds, found: dict[str, str]) -> None:
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    errors = library_errors()
    for tag in sorted(ds.keys()):
        # As parsed: a deferred value (the pixel data) is not read to be looked at.
        raw = ds.get_item(tag, keep_deferred=True)
        keyword, vr = keyword_for_tag(tag), raw.VR
        if vr in (None, "UN") and not tag.is_private:  # implicit or unknown: the dictionary's
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                pass
        # Unknown still (private, implicit): read to find out, as pydicom would.
        if vr in (None, "UN") or vr == "SQ" or identifying_kind(keyword, vr):
            try:
                elem = ds[tag]
                value = elem.value
                vr = elem.VR
                text = "" if vr == "SQ" else str(value)
            except errors:
                continue
            if vr == "SQ":
                for item in value or ():
                    _collect(item, found)
            elif identifying_kind(keyword, vr) and text:
                found.setdefault(keyword or str(tag), text)
