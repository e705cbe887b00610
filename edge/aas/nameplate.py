"""The Digital Nameplate (IDTA 02006-3-0) and Technical Data (IDTA 02003-2-0) submodels of the station."""

from __future__ import annotations

from pathlib import Path

from basyx.aas import model

from edge import __version__
from edge.aas.config import AasConfig
from edge.aas.elements import Element, collection, element_list, optional, own, prop, submodel, text
from edge.aas.identity import Identity
from edge.errors import LinesideError
from edge.station.calibfile import CalibrationFile, load_calibration
from edge.station.config import LinesideConfig, RecipeConfig

NAMEPLATE_SEMANTIC = "https://admin-shell.io/idta/nameplate/3/0/Nameplate"
TECHNICAL_DATA_SEMANTIC = "0173-1#01-AHX837#002"  # IDTA 02003-2-0's submodel concept (ECLASS)
_ADDRESS = "https://admin-shell.io/zvei/nameplate/1/0/ContactInformations/AddressInformation"
_AREA = "0173-1#02-ABL358#002/0173-1#01-AHX773#002"  # a technical property area (a list item)
_ARBITRARY = "https://admin-shell.io/SMT/General/Arbitrary"


def nameplate_submodel(aas: AasConfig, identity: Identity) -> model.Submodel:
    """Every element IDTA 02006-3-0 marks mandatory (cardinality One), plus the optional ones we know."""
    year = aas.year_of_construction
    elements: list[Element] = [
        prop("URIOfTheProduct", aas.product_uri, "0112/2///61987#ABN590#002", model.datatypes.AnyURI),
        text("ManufacturerName", aas.manufacturer_name, "0112/2///61987#ABA565#009"),
        text("ManufacturerProductDesignation", aas.product_designation, "0112/2///61987#ABA567#009"),
        collection("AddressInformation", _ADDRESS, _address(aas)),
        text("ManufacturerProductFamily", "lineside", "0112/2///61987#ABP464#002"),
        prop("OrderCodeOfManufacturer", aas.order_code, "0112/2///61987#ABA950#008"),
        prop("SerialNumber", identity.serial_number, "0112/2///61987#ABA951#009"),
        *optional(
            None if year is None else prop("YearOfConstruction", str(year), "0112/2///61987#ABP000#002"),
            None
            if aas.country_of_origin is None
            else prop("CountryOfOrigin", aas.country_of_origin, "0112/2///61987#ABP462#001"),
        ),
        prop("SoftwareVersion", __version__, "0112/2///61987#ABA601#008"),
    ]
    return submodel(
        identity.submodel_id("Nameplate"),
        "Nameplate",
        NAMEPLATE_SEMANTIC,
        elements,
        version=("3", "0"),
        template_id="https://admin-shell.io/IDTA/02006/3/0",
    )


def _address(aas: AasConfig) -> list[Element]:
    """The Address Information drop-in: every element is optional, so only what the config gives."""
    fields = (
        ("Company", aas.manufacturer_name, "0173-1#02-AAW001#001"),
        ("Street", aas.street, "0173-1#02-AAO128#002"),
        ("Zipcode", aas.zipcode, "0173-1#02-AAO129#002"),
        ("CityTown", aas.city, "0173-1#02-AAO132#002"),
        ("NationalCode", aas.national_code, "0173-1#02-AAO134#002"),
    )
    return [text(name, value, semantic) for name, value, semantic in fields if value is not None]


def technical_data_submodel(config: LinesideConfig, identity: Identity) -> model.Submodel:
    """General information, then one technical property area for the camera and one per recipe."""
    aas = config.aas
    general = collection(
        "GeneralInformation",
        "0173-1#02-ABK161#002/0173-1#01-AHX838#002",
        [
            prop("ManufacturerName", aas.manufacturer_name, "0173-1#02-AAO677#004"),
            text("ManufacturerProductDesignation", aas.product_designation, "0173-1#02-AAW338#003"),
            prop("ManufacturerArticleNumber", aas.order_code, "0173-1#02-AAO676#005"),
            prop("ManufacturerOrderCode", aas.order_code, "0173-1#02-AAO227#004"),
        ],
    )
    areas = [_camera_area(config), *(_recipe_area(recipe) for recipe in config.recipes)]
    return submodel(
        identity.submodel_id("TechnicalData"),
        "TechnicalData",
        TECHNICAL_DATA_SEMANTIC,
        [
            general,
            element_list(
                "TechnicalPropertyAreas",
                "0173-1#02-ABK163#002",
                areas,
                model.SubmodelElementCollection,
                _AREA,
            ),
        ],
        version=("2", "0"),
        template_id="https://admin-shell.io/idta-02003-2-0",
    )


def _area(title: str, elements: list[Element]) -> model.SubmodelElementCollection:
    area = collection(None, _AREA, elements)
    area.display_name = model.MultiLanguageNameType({"en": title})
    return area


def _camera_area(config: LinesideConfig) -> model.SubmodelElementCollection:
    source = config.source
    width, height = source.expected_width, source.expected_height
    if width is None or height is None:
        recipe = config.recipe(config.default_recipe)
        camera = _calibration(recipe) if recipe is not None else None
        width, height = (camera.camera.width, camera.camera.height) if camera is not None else (None, None)
    elements = optional(
        prop("SourceKind", source.kind, own("Camera/SourceKind")),
        None if source.serial is None else prop("CameraSerial", source.serial, own("Camera/Serial")),
        None
        if source.pixel_format is None
        else prop("PixelFormat", source.pixel_format, own("Camera/PixelFormat")),
        None
        if source.exposure_us is None
        else prop("ExposureTime", source.exposure_us, own("Camera/ExposureTimeUs"), model.datatypes.Double),
        None if width is None else prop("FrameWidth", width, own("Camera/FrameWidthPx"), model.datatypes.Int),
        None
        if height is None
        else prop("FrameHeight", height, own("Camera/FrameHeightPx"), model.datatypes.Int),
        prop("TriggerMode", config.trigger.mode, own("Camera/TriggerMode")),
    )
    return _area("Camera", elements)


def _recipe_area(recipe: RecipeConfig) -> model.SubmodelElementCollection:
    judges = [recipe.model, *(stage.model for stage in recipe.stages)]
    elements: list[Element] = [
        prop("RecipeNumber", recipe.number, own("Recipe/Number"), model.datatypes.Int),
        prop("RecipeName", recipe.name, own("Recipe/Name")),
        element_list(
            "Judges",
            own("Recipe/Judges"),
            (prop(None, _model_label(path), own("Recipe/Judge")) for path in judges),
            model.Property,
            own("Recipe/Judge"),
            model.datatypes.String,
        ),
    ]
    calibration = _calibration(recipe)
    if calibration is not None:
        elements.append(_calibration_section(calibration))
    return _area(f"Recipe {recipe.number}: {recipe.name}", elements)


def _calibration(recipe: RecipeConfig) -> CalibrationFile | None:
    if recipe.calibration is None:
        return None
    try:
        return load_calibration(recipe.calibration)
    except LinesideError as exc:
        raise LinesideError(f"recipes.{recipe.number}.calibration: {exc}") from None


def _calibration_section(calibration: CalibrationFile) -> model.SubmodelElementCollection:
    lens = calibration.intrinsics
    scale = calibration.scale
    elements = optional(
        prop("FrameWidth", calibration.camera.width, own("Camera/FrameWidthPx"), model.datatypes.Int),
        prop("FrameHeight", calibration.camera.height, own("Camera/FrameHeightPx"), model.datatypes.Int),
        None
        if lens is None
        else prop("LensRmsPx", lens.rms_px, own("Calibration/LensRmsPx"), model.datatypes.Double),
        None
        if lens is None
        else prop("LensViews", lens.views, own("Calibration/LensViews"), model.datatypes.Int),
        None
        if scale is None
        else prop("MmPerPixel", scale.mm_per_px, own("Calibration/MmPerPx"), model.datatypes.Double),
        None if not calibration.created else prop("Created", calibration.created, own("Calibration/Created")),
    )
    return collection("LensCalibration", _ARBITRARY, elements)


def _model_label(model_dir: Path) -> str:
    """`name version` from the card, else the folder (the AI model submodels carry the full card)."""
    from edge.modelstore.card import read_card

    try:
        card = read_card(model_dir)
    except LinesideError:
        return str(model_dir)
    return f"{card.name} {card.version} ({card.task})"
